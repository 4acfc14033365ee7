//! The messages: [`ToWorker`] and [`FromWorker`], what they carry, and
//! [`AttemptKey`], the name of one attempt that most of them are about.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use super::ask::Question;
use super::hello::{SupervisorHello, WorkerHello};
use super::messaging::{Answer, MessageKind, MessageMeta, Query, Recipients};

/// One attempt of one request: the request id and the attempt number.
///
/// The frames about an attempt carry these as two fields, `id` and
/// `attempt` (the wire format has no `AttemptKey`); this type is their pair
/// in code, where an attempt is a key in a table or a value passed around.
/// Displayed as `id#attempt`.
///
/// ```
/// use nanny_worker::protocol::AttemptKey;
/// let key = AttemptKey::new(uuid::Uuid::nil(), 2);
/// assert_eq!((key.id, key.attempt), (uuid::Uuid::nil(), 2));
/// assert_eq!(key.to_string(), "00000000-0000-0000-0000-000000000000#2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    /// The request id.
    pub id: Uuid,
    /// The attempt number, starting at 1.
    pub attempt: u32,
}

impl AttemptKey {
    /// The key of attempt `attempt` of request `id`.
    pub const fn new(id: Uuid, attempt: u32) -> Self {
        Self { id, attempt }
    }
}

impl fmt::Display for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.id, self.attempt)
    }
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
    /// channel (tag [`FdTag`](super::FdTag) with kind
    /// [`FD_KIND_ATTACHMENT`](super::FD_KIND_ATTACHMENT)), if any.
    /// Absent in frames without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentKind>,
}

/// A request attempt's fields besides its payload (and without an
/// attachment): what [`encode_request_frame`](super::encode_request_frame)
/// writes with a borrowed payload, so a sender that keeps the payload
/// (for a retry) writes it without a copy of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// The request id.
    pub id: Uuid,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// When the request was enqueued, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

impl RequestFrame {
    /// The attempt this frame is.
    pub fn key(&self) -> AttemptKey {
        AttemptKey::new(self.id, self.attempt)
    }
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
    /// The worker runtime's own memory figures, by name, in bytes or
    /// counts (a Node worker: `heap_total`, `heap_used`, `external`,
    /// `array_buffers`); empty (absent on the wire) when it has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_memory: BTreeMap<String, u64>,
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
    /// Version 3, only to a worker that declared
    /// [`CAP_CONNECTIONS`](super::CAP_CONNECTIONS): no new connections (or
    /// requests) come to this worker; finish the open ones (close idle
    /// keep-alive connections) and close them. A `SoftKill` follows once
    /// they are closed, or at the drain timeout.
    Drain,
    /// Version 4, only to a worker that declared
    /// [`CAP_MESSAGING`](super::CAP_MESSAGING): a message from another
    /// worker (or a confirmation), with its sender's meta.
    Message {
        /// How it was addressed.
        kind: MessageKind,
        /// Who sent it.
        meta: MessageMeta,
        /// Its data (MessagePack from the Rust API).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Version 4: the answer to the worker's [`FromWorker::Query`] `id`.
    QueryAnswer {
        /// The query's id.
        id: u64,
        /// The answer.
        answer: Answer,
    },
    /// Version 4: the answer to the worker's [`FromWorker::Ask`] with this
    /// `id`: `Ok` with MessagePack, or an error whose `kind` is one of
    /// [`ask_kind`](super::ask_kind).
    Answer {
        /// The question's id.
        id: u64,
        /// The answer.
        outcome: Outcome,
    },
    /// Version 4, only to a worker that declared
    /// [`CAP_EXIT`](super::CAP_EXIT): another member asked for this worker
    /// to stop. Run the soft-kill work (no new requests come; finish those
    /// in flight), then exit with `code`. SIGKILL follows after the
    /// supervisor's stop delay.
    Exit {
        /// The exit status to exit with.
        code: i32,
    },
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
        /// (kind [`FD_KIND_RESPONSE_STREAM`](super::FD_KIND_RESPONSE_STREAM)).
        /// Absent means `false`.
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
    /// Version 3 ([`CAP_CONNECTIONS`](super::CAP_CONNECTIONS)): whether
    /// the worker takes balanced connections now. Sent `true` when its
    /// server starts and `false` when it closes; the supervisor offers
    /// connections only between the two.
    Listening {
        /// Takes connections from now on.
        on: bool,
    },
    /// Version 3: the worker took the connection offered as `id#attempt`
    /// (fd channel kind [`FD_KIND_CONNECTION`](super::FD_KIND_CONNECTION));
    /// the supervisor closes its copy.
    ConnectionTaken {
        /// Connection id.
        id: Uuid,
        /// The offer taken.
        attempt: u32,
    },
    /// Version 3: the worker gives the connection offered as `id#attempt`
    /// back untouched (its server closed, it is draining, or its queue is
    /// full); the supervisor offers it to another worker. Implies
    /// `Listening { on: false }`.
    ConnectionBounced {
        /// Connection id.
        id: Uuid,
        /// The offer given back.
        attempt: u32,
    },
    /// Version 3: a connection this worker took is closed.
    ConnectionClosed {
        /// Connection id.
        id: Uuid,
    },
    /// Version 4 ([`CAP_MESSAGING`](super::CAP_MESSAGING)): a message for
    /// other workers, routed by the supervisor, which adds the meta.
    Publish {
        /// Its recipients.
        to: Recipients,
        /// Its data (MessagePack from the Rust API).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Version 4: a query for the supervisor, answered by
    /// [`ToWorker::QueryAnswer`] with the same `id`.
    Query {
        /// Chosen by the worker, echoed in the answer.
        id: u64,
        /// The question.
        query: Query,
    },
    /// Version 4: one of the worker's confirmation listeners fired (it
    /// counted its `n` confirmations of `identifier`): counted in its
    /// `confirmations_completed`.
    Confirmed {
        /// The identifier.
        identifier: String,
    },
    /// Version 4: a question for the supervisor; exactly one
    /// [`ToWorker::Answer`] with this `id` follows. Ids are the worker's
    /// (unique among its questions in flight).
    Ask {
        /// The question's id.
        id: u64,
        /// What is asked.
        question: Question,
    },
    /// Version 4: the worker is ending itself with this exit code
    /// (`close(code)`): no new work for it; its exit follows at once and
    /// the restart policy judges it by `code`.
    Closing {
        /// The exit status it exits with.
        code: i32,
    },
}

/// The data after the tag of a connection message on the fd channel
/// ([`FD_KIND_CONNECTION`](super::FD_KIND_CONNECTION)), always inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionFrame {
    /// The name of the supervisor's listener that accepted it.
    pub listener: String,
    /// What the socket is: [`AttachmentKind::Tcp`] or [`AttachmentKind::Unix`].
    pub kind: AttachmentKind,
}

/// The data after the tag of a broadcast that carries a descriptor on the
/// fd channel ([`FD_KIND_BROADCAST`](super::FD_KIND_BROADCAST)), always
/// inline: the same two fields as [`ToWorker::Broadcast`]. Together with
/// the tag it must fit in [`FD_MESSAGE_MAX`](super::FD_MESSAGE_MAX) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastFrame {
    /// Event name.
    pub event: String,
    /// Event payload (MessagePack from the Rust API).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_attempt_is_two_fields_on_the_wire_not_a_key() {
        // `AttemptKey` is for code only: a frame about an attempt still
        // carries `id` and `attempt` as two named fields.
        let id = Uuid::from_bytes([7; 16]);
        let cancel = rmp_serde::to_vec_named(&ToWorker::Cancel { id, attempt: 3 }).unwrap();
        let map: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
            rmp_serde::from_slice(&cancel[8..]).unwrap();
        assert_eq!(&cancel[..8], b"\x81\xa6Cancel");
        assert_eq!(map.keys().collect::<Vec<_>>(), ["attempt", "id"]);
        let frame = RequestFrame {
            id,
            attempt: 3,
            created_at_ms: 0,
            payload: vec![],
            attachment: None,
        };
        assert_eq!(frame.key(), AttemptKey::new(id, 3));
    }
}
