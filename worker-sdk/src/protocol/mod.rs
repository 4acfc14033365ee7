//! The wire protocol between a nanny supervisor and one worker process.
//!
//! This module is the contract; `PROTOCOL.md` beside this crate describes the
//! same thing for implementers in other languages. In short:
//!
//! * one `SOCK_STREAM` Unix socketpair per worker; the child inherits its end
//!   (fd number in [`ENV_FD`]);
//! * frames are a 4-byte big-endian length followed by that many bytes of
//!   MessagePack; a frame longer than the negotiated maximum
//!   ([`ENV_MAX_FRAME_LEN`], default [`DEFAULT_MAX_FRAME_LEN`]) is a protocol
//!   error on either side;
//! * the first frame each way is a hello carrying [`PROTOCOL_VERSION`];
//! * messages are [`ToWorker`] (supervisor → worker) and [`FromWorker`]
//!   (worker → supervisor), encoded as externally tagged enums with named
//!   fields (MessagePack maps), so fields can be added compatibly.
//!
//! Payloads (`payload`, `body`) are opaque bytes to the protocol. The Rust
//! API fills them with MessagePack (named fields) of the user's types.
//!
//! Everything is public at `nanny_worker::protocol::*`; the files behind it
//! are split by concern: `hello.rs` (environment, versions, capabilities,
//! hellos), `frames.rs` (the messages and [`AttemptKey`]), `fd.rs` (the fd
//! channel's [`FdTag`]), `codec.rs` (limits, framing, payload encoding), `hot.rs` (the
//! two frames every request crosses, encoded by hand, byte for byte as
//! serde does),
//! `messaging.rs` (what the messages between workers and the queries
//! carry), `ask.rs` (the questions to the supervisor and their answers), `quiet.rs`
//! (the link socket's halves, which wake their process only for what it
//! waits for).

mod ask;
mod codec;
mod encode;
mod fd;
mod frames;
mod hello;
mod hot;
mod messaging;
pub mod quiet;

pub use ask::{ask_kind, Question, SpawnedWorker, Target};
pub use codec::{
    decode_payload, encode_payload, frame_reader, frame_writer, idle_frame_reader, idle_frame_writer,
    length_codec, max_payload_len, release_read_room, release_write_room, take_read_room, take_write_room,
    Frame, FrameReader, FrameWriter, MsgPack, DEFAULT_MAX_FRAME_LEN, FRAME_OVERHEAD, LINK_BUFFER,
    MAX_FRAME_DEPTH, MAX_PAYLOAD_DEPTH,
};
pub use encode::{encode_frame, encode_request_frame, feed_frame, start_frame};
pub use fd::{
    FdTag, FD_KIND_ATTACHMENT, FD_KIND_BROADCAST, FD_KIND_CONNECTION, FD_KIND_RESPONSE_STREAM, FD_MESSAGE_MAX,
};
pub use frames::{
    AttachmentKind, AttemptKey, BroadcastFrame, ConnectionFrame, FromWorker, Heartbeat, Outcome, RemoteError,
    RequestFrame, RequestHead, ToWorker,
};
pub use hello::{
    Capabilities, SupervisorHello, WorkerHello, CAP_CONNECTIONS, CAP_EXIT, CAP_FD_CHANNEL, CAP_MESSAGING,
    ENV_FD, ENV_FD_CHANNEL, ENV_LOGICAL_ID, ENV_MAX_FRAME_LEN, ENV_POOL, ENV_PROCESS_TITLE, ENV_PULSE_MS,
    ENV_SPIN_US, ENV_SUPERVISOR_PID, ENV_UNHEALTHY_TIMEOUT_MS, ENV_WORKER_ID, ENV_WORKER_NAME,
    EVENT_LISTENER_FAILED, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use messaging::{
    Answer, ClusterInfo, Member, MessageKind, MessageMeta, PoolMembers, Query, Recipients, WorkerAddr,
    WorkerCounters,
};
