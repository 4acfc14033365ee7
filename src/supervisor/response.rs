//! What a caller gives with a request ([`EnqueueOptions`]) and gets back
//! ([`Response`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::attach::{Attachment, ResponseStream};
use crate::error::Error;
use crate::retries::Retries;
use crate::WorkerId;

/// Per-request options for [`Supervisor::enqueue_with`](crate::Supervisor::enqueue_with).
#[derive(Debug, Default)]
pub struct EnqueueOptions {
    pub(super) pool: Option<String>,
    pub(super) attachment: Option<Attachment>,
    pub(super) timeout: Option<Option<Duration>>,
    pub(super) deadline: Option<Duration>,
    pub(super) retries: Option<Retries>,
    pub(super) key: Option<u64>,
    pub(super) local: bool,
}

impl EnqueueOptions {
    /// The builder's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the request to this pool (default: the first pool).
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Per-attempt timeout; `None` waits forever.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Overall deadline from the call, time in the queue included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Hands a socket or a byte stream to the worker with the request; see
    /// [`crate::attach`] for ownership and the retry rule.
    pub fn attach(mut self, attachment: Attachment) -> Self {
        self.attachment = Some(attachment);
        self
    }

    /// A sticky key: every request of the pool with the same key goes to
    /// the same worker while it lives, chosen by rendezvous hashing over
    /// the pool's slot names ([`crate::sticky`]). While that worker is at
    /// its concurrency (or busy) the request waits for it, without holding
    /// up other keys or unkeyed requests; when it is gone (crash, drain,
    /// resize, recycling) the key moves to its next owner, and a
    /// make-before-break successor takes its slot's keys once ready. A
    /// retry of a keyed request goes to its key's owner too, even the
    /// worker whose attempt failed if it still lives.
    ///
    /// Any bytes: a `&str`, a `String`, `id.to_be_bytes()`, an IP's
    /// octets (which name the same owner as a
    /// [`sticky_by_peer_ip`](crate::Listener::sticky_by_peer_ip)
    /// connection from that address). Hashed here, with a fixed hash: the
    /// same key over the same slots has the same owner on every run
    /// ([`crate::sticky::owner`] computes it).
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(crate::sticky::hash(key.as_ref()));
        self
    }

    /// With a shared queue ([`Builder::queue`](crate::Builder::queue)):
    /// runs the request on this host's workers only, as a request with an
    /// attachment or a sticky key does. For answers that stream back
    /// ([`Response::stream`]), which cannot cross hosts, and for latency.
    /// Without a shared queue every request is local anyway.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Retries after a timeout or a worker exit (`n` retries = `n + 1`
    /// attempts; [`Retries::Unlimited`] retries until an attempt answers,
    /// within the deadline if one is set).
    pub fn retries(mut self, retries: impl Into<Retries>) -> Self {
        self.retries = Some(retries.into());
        self
    }
}

/// A worker's answer to a request.
pub struct Response {
    pub(crate) id: Uuid,
    pub(crate) created_at: SystemTime,
    pub(crate) worker: WorkerId,
    pub(crate) attempt: u32,
    pub(crate) data: Vec<u8>,
    pub(crate) stream: Option<ResponseStream>,
    /// The host that answered through a shared queue.
    pub(crate) host: Option<String>,
}

impl Response {
    /// The request id (UUID v4).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// When the request was enqueued.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// The worker that answered.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The host whose worker answered, when the request went through a
    /// shared queue ([`crate::RedisQueue`]); `None` for a local answer.
    /// [`worker`](Self::worker) is then that host's worker.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Which attempt was answered (1 = the first; with a shared queue,
    /// reclaims by other hosts count).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The answer, decoded into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        nanny_worker::protocol::decode_payload(&self.data).map_err(|e| Error::Decode(e.to_string()))
    }

    /// The answer's MessagePack bytes.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }

    /// Takes the response stream the worker answered with
    /// (`req.respond_stream(..)`), if any. A worker that exits before
    /// finishing it makes the stream fail with `UnexpectedEof`.
    pub fn stream(&mut self) -> Option<ResponseStream> {
        self.stream.take()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("id", &self.id)
            .field("worker", &self.worker)
            .field("host", &self.host)
            .field("attempt", &self.attempt)
            .field("len", &self.data.len())
            .field("stream", &self.stream.is_some())
            .finish()
    }
}
