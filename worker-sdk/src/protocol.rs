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

use std::marker::PhantomData;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_bytes::ByteBuf;
use uuid::Uuid;

/// The protocol version this crate speaks, sent in both hellos. See
/// `PROTOCOL.md`, "Versions", for what each side does with another one.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest worker protocol version a supervisor built with this crate
/// accepts. A supervisor accepts a worker whose hello says a version in
/// `MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION` and refuses any other (a
/// protocol error naming both); a worker accepts a supervisor whose hello's
/// `min_version..=version` holds its own version.
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// Bytes a frame needs besides its payload (message tag, field names, ids,
/// timestamps, length prefixes), with room to spare: the largest envelope,
/// a `Request` with an attachment, takes about 100.
pub const FRAME_OVERHEAD: usize = 256;

/// The largest payload one frame carries, in both directions: a request's
/// payload, an answer's payload, an `Emit` payload (less its event name).
/// Both sides check it before sending: the supervisor refuses a larger
/// request with `PayloadTooLarge`, the SDK answers a larger response with
/// an `oversize` error. So a request of exactly this size can be echoed.
///
/// ```
/// use nanny_worker::protocol::{max_payload_len, DEFAULT_MAX_FRAME_LEN};
/// assert_eq!(max_payload_len(DEFAULT_MAX_FRAME_LEN), 8 * 1024 * 1024 - 256);
/// ```
pub const fn max_payload_len(max_frame_len: usize) -> usize {
    max_frame_len.saturating_sub(FRAME_OVERHEAD)
}

/// Capability name: the worker takes attachments and may send response
/// streams on the fd channel (section 11 of `PROTOCOL.md`).
pub const CAP_FD_CHANNEL: &str = "fd-channel";

/// What a worker declared it supports in its hello. The wire form is a list
/// of names ([`WorkerHello::capabilities`]), so that workers in any
/// language can declare them; names this crate does not know are ignored.
/// The supervisor never sends a worker a kind of message it did not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`CAP_FD_CHANNEL`]: attachments and response streams.
    pub fd_channel: bool,
}

impl Capabilities {
    /// Reads the capability names of a hello, ignoring unknown ones.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut caps = Self::default();
        for name in names {
            if name.as_ref() == CAP_FD_CHANNEL {
                caps.fd_channel = true;
            }
        }
        caps
    }

    /// The names to put in a hello.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.fd_channel {
            names.push(CAP_FD_CHANNEL.to_owned());
        }
        names
    }
}

/// The default bound on one frame's body, in bytes (8 MiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Environment variable: the inherited socket's file descriptor number.
pub const ENV_FD: &str = "NANNY_FD";
/// Environment variable: the worker's id, unique within one supervisor.
pub const ENV_WORKER_ID: &str = "NANNY_WORKER_ID";
/// Environment variable: the name of the worker's pool.
pub const ENV_POOL: &str = "NANNY_POOL";
/// Environment variable: the supervisor's process id.
pub const ENV_SUPERVISOR_PID: &str = "NANNY_SUPERVISOR_PID";
/// Environment variable: the worker's logical id (its slot in the pool; a
/// replacement keeps its predecessor's).
pub const ENV_LOGICAL_ID: &str = "PROCESS_LOGICAL_ID";
/// Environment variable: the heartbeat interval in milliseconds.
pub const ENV_PULSE_MS: &str = "NANNY_PULSE_MS";
/// Environment variable: the maximum frame body length in bytes.
pub const ENV_MAX_FRAME_LEN: &str = "NANNY_MAX_FRAME_LEN";

/// The supervisor's hello, the first frame it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorHello {
    /// [`PROTOCOL_VERSION`] of the supervisor: the newest it speaks.
    pub version: u32,
    /// The oldest worker version it accepts ([`MIN_PROTOCOL_VERSION`]);
    /// absent (a version-1 supervisor) means `version` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<u32>,
    /// The worker's id (same as [`ENV_WORKER_ID`]).
    pub worker_id: u64,
    /// Heartbeat interval in milliseconds.
    pub pulse_ms: u64,
    /// Largest frame body either side may send.
    pub max_frame_len: u32,
}

/// The worker's hello, the first frame it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    /// [`PROTOCOL_VERSION`] of the worker.
    pub version: u32,
    /// The worker's own process id.
    pub pid: u32,
    /// Free-form name and version of the worker library, for diagnostics.
    pub agent: String,
    /// What the worker supports, by name ([`Capabilities::names`]; e.g.
    /// [`CAP_FD_CHANNEL`]). Unknown names are ignored; absent means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// One attempt at a request, as the worker receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// The request id (UUID v4; 16 bytes on the wire).
    pub id: Uuid,
    /// Attempt number, starting at 1. Responses echo it.
    pub attempt: u32,
    /// When the request was enqueued, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The request payload (MessagePack from the Rust API).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// What kind of file descriptor accompanies this attempt on the fd
    /// channel (tag [`FdTag`] with kind [`FD_KIND_ATTACHMENT`]), if any.
    /// Absent in frames without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentKind>,
}

/// What an attached file descriptor is, so the worker can hand the right type
/// to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentKind {
    /// A connected TCP socket.
    Tcp,
    /// A connected Unix stream socket.
    Unix,
    /// Any other descriptor, handed over as is.
    Fd,
    /// A byte stream: one end of a stream socketpair carrying chunked bytes
    /// (see [`stream`](crate::stream)); the supervisor pumps the caller's reader into
    /// the other end once the worker has accepted.
    Stream,
}

/// Environment variable: the fd channel's file descriptor number (a
/// `SOCK_SEQPACKET` Unix socket; one fd per message, see [`FdTag`]).
pub const ENV_FD_CHANNEL: &str = "NANNY_FD_CHANNEL";

/// Fd channel message kind: a request's attachment (supervisor → worker).
pub const FD_KIND_ATTACHMENT: u8 = 1;
/// The longest fd channel message: a tag ([`FdTag::LEN`] bytes) and, for an
/// attachment, the request frame inline (MessagePack of [`RequestFrame`],
/// without a length prefix) when it fits. A request whose frame does not fit
/// sends the tag alone, and the frame on the framed socket.
pub const FD_MESSAGE_MAX: usize = 4096;
/// Fd channel message kind: a response stream (worker → supervisor).
pub const FD_KIND_RESPONSE_STREAM: u8 = 2;

/// The data part of one fd channel message: which attempt the single
/// `SCM_RIGHTS` descriptor belongs to. 21 bytes on the wire: the request id
/// (16), the attempt (u32 big-endian), the kind (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdTag {
    /// Request id.
    pub id: Uuid,
    /// Attempt.
    pub attempt: u32,
    /// [`FD_KIND_ATTACHMENT`] or [`FD_KIND_RESPONSE_STREAM`].
    pub kind: u8,
}

impl FdTag {
    /// Encoded length.
    pub const LEN: usize = 21;

    /// Encodes the tag.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..16].copy_from_slice(self.id.as_bytes());
        out[16..20].copy_from_slice(&self.attempt.to_be_bytes());
        out[20] = self.kind;
        out
    }

    /// Decodes a tag; `None` unless `bytes` is exactly [`Self::LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        Some(Self {
            id: Uuid::from_bytes(bytes[..16].try_into().ok()?),
            attempt: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            kind: bytes[20],
        })
    }
}

/// An error a handler answered with. It is delivered to the caller as is and
/// never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RemoteError {
    /// A short machine-readable class, e.g. `"handler"`, `"panic"`, `"dropped"`.
    pub kind: String,
    /// A human-readable message.
    pub message: String,
}

impl RemoteError {
    /// A new remote error of the given kind.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// The outcome of one attempt, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler's answer (MessagePack from the Rust API).
    Ok(ByteBuf),
    /// The handler failed; the caller gets [`RemoteError`].
    Err(RemoteError),
}

/// What a worker reports every pulse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Resident set size of the worker process, in bytes, as it reads it.
    pub rss_bytes: u64,
    /// Requests the worker is handling.
    pub in_flight: u32,
    /// How late the worker's pulse timer fired, in microseconds: a blocked
    /// runtime shows here.
    pub lag_us: u64,
    /// Milliseconds since the worker connected.
    pub uptime_ms: u64,
    /// Requests answered since start.
    pub served: u64,
}

/// Frames from the supervisor to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ToWorker {
    /// First frame.
    Hello(SupervisorHello),
    /// Handle this request and answer with [`FromWorker::Response`].
    Request(RequestFrame),
    /// Nobody waits for this attempt any more: stop working on it. An answer
    /// sent anyway is dropped.
    Cancel {
        /// Request id.
        id: Uuid,
        /// The abandoned attempt.
        attempt: u32,
    },
    /// A broadcast event for every worker.
    Broadcast {
        /// Event name.
        event: String,
        /// Event payload (MessagePack from the Rust API).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Finish in-flight work, then exit with status 0. No requests follow.
    SoftKill,
    /// The supervisor is about to SIGKILL this worker.
    HardKill,
}

/// Frames from a worker to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FromWorker {
    /// First frame.
    Hello(WorkerHello),
    /// The worker accepts requests (sent once at start, and after `Busy`).
    Ready,
    /// The worker accepts no new requests until the next `Ready`.
    Busy,
    /// The answer to one attempt.
    Response {
        /// Request id.
        id: Uuid,
        /// The attempt being answered.
        attempt: u32,
        /// The handler's outcome.
        outcome: Outcome,
        /// Whether a response stream for this attempt comes on the fd channel
        /// (kind [`FD_KIND_RESPONSE_STREAM`]). Absent means `false`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stream: bool,
    },
    /// The worker received this attempt's attachment: from now on the
    /// attachment is the worker's, and the attempt is not retried elsewhere.
    Accepted {
        /// Request id.
        id: Uuid,
        /// The attempt whose attachment was received.
        attempt: u32,
    },
    /// The worker has taken the request (informational).
    Ack {
        /// Request id.
        id: Uuid,
        /// The attempt being acknowledged.
        attempt: u32,
    },
    /// A custom event for the supervisor.
    Emit {
        /// Event name.
        event: String,
        /// Event payload (MessagePack from the Rust API).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Periodic health report.
    Heartbeat(Heartbeat),
}

/// Encodes a user value the way the Rust API puts it in payloads:
/// MessagePack with named fields.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// Decodes a payload written by [`encode_payload`] (or any MessagePack).
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

/// A [`tokio_serde`] codec for protocol frames: MessagePack with named
/// fields (maps), so that fields can be appended without breaking peers.
#[derive(Debug)]
pub struct MsgPack<T> {
    _marker: PhantomData<fn(T) -> T>,
}

impl<T> Default for MsgPack<T> {
    fn default() -> Self {
        Self { _marker: PhantomData }
    }
}

impl<T: Serialize> tokio_serde::Serializer<T> for MsgPack<T> {
    type Error = std::io::Error;

    fn serialize(self: Pin<&mut Self>, item: &T) -> Result<Bytes, Self::Error> {
        rmp_serde::to_vec_named(item)
            .map(Bytes::from)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl<T: DeserializeOwned> tokio_serde::Deserializer<T> for MsgPack<T> {
    type Error = std::io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> Result<T, Self::Error> {
        rmp_serde::from_slice(src).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// The length-delimited codec both sides use, bounded to `max_frame_len`.
pub fn length_codec(max_frame_len: usize) -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// A framed reader of `T` messages over any byte source.
pub type FrameReader<R, T> = tokio_serde::SymmetricallyFramed<
    tokio_util::codec::FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    T,
    MsgPack<T>,
>;

/// A framed writer of `T` messages over any byte sink.
pub type FrameWriter<W, T> = tokio_serde::SymmetricallyFramed<
    tokio_util::codec::FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    T,
    MsgPack<T>,
>;

/// Wraps a reader into a [`FrameReader`].
pub fn frame_reader<R: tokio::io::AsyncRead, T>(io: R, max_frame_len: usize) -> FrameReader<R, T> {
    tokio_serde::SymmetricallyFramed::new(
        tokio_util::codec::FramedRead::new(io, length_codec(max_frame_len)),
        MsgPack::default(),
    )
}

/// Wraps a writer into a [`FrameWriter`].
pub fn frame_writer<W: tokio::io::AsyncWrite, T>(io: W, max_frame_len: usize) -> FrameWriter<W, T> {
    tokio_serde::SymmetricallyFramed::new(
        tokio_util::codec::FramedWrite::new(io, length_codec(max_frame_len)),
        MsgPack::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};

    #[tokio::test]
    async fn frames_round_trip_both_ways() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut w: FrameWriter<_, ToWorker> = frame_writer(a, 1024);
        let mut r: FrameReader<_, ToWorker> = frame_reader(b, 1024);
        let frames = vec![
            ToWorker::Hello(SupervisorHello {
                version: PROTOCOL_VERSION,
                min_version: Some(MIN_PROTOCOL_VERSION),
                worker_id: 7,
                pulse_ms: 1000,
                max_frame_len: 1024,
            }),
            ToWorker::Request(RequestFrame {
                id: Uuid::new_v4(),
                attempt: 1,
                created_at_ms: 5,
                payload: encode_payload(&("hi", 3u8)).unwrap(),
                attachment: None,
            }),
            ToWorker::SoftKill,
        ];
        for f in &frames {
            w.send(f.clone()).await.unwrap();
        }
        for f in frames {
            assert_eq!(r.next().await.unwrap().unwrap(), f);
        }
    }

    #[tokio::test]
    async fn oversize_frame_is_an_error_on_both_sides() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut w: FrameWriter<_, FromWorker> = frame_writer(a, 64);
        let big = FromWorker::Emit {
            event: "x".into(),
            payload: vec![0; 100],
        };
        assert!(w.send(big.clone()).await.is_err(), "sender enforces the bound");
        // A permissive sender against a strict reader: the reader refuses.
        let mut w: FrameWriter<_, FromWorker> = frame_writer(w.into_inner().into_inner(), 4096);
        let mut r: FrameReader<_, FromWorker> = frame_reader(b, 64);
        w.send(big).await.unwrap();
        assert!(r.next().await.unwrap().is_err(), "receiver enforces the bound");
    }

    #[tokio::test]
    async fn garbage_is_a_decode_error_not_a_panic() {
        use tokio::io::AsyncWriteExt;
        let (mut a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut r: FrameReader<_, FromWorker> = frame_reader(b, 64);
        a.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await.unwrap();
        assert!(r.next().await.unwrap().is_err());
    }

    #[test]
    fn wire_shape_is_externally_tagged_named_maps() {
        // Pinned so that PROTOCOL.md stays true: unit variants are a string,
        // data variants a one-entry map {name: value}, structs are maps.
        let ready = rmp_serde::to_vec_named(&FromWorker::Ready).unwrap();
        assert_eq!(ready, b"\xa5Ready");
        let hb = rmp_serde::to_vec_named(&FromWorker::Heartbeat(Heartbeat::default())).unwrap();
        assert_eq!(hb[0], 0x81, "one-entry map");
        assert_eq!(&hb[1..11], b"\xa9Heartbeat");
        assert_eq!(hb[11], 0x85, "five named fields");
    }
}
