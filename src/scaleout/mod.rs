//! Past one machine: supervisors on several hosts share one request queue
//! per pool on Redis Streams, and each caller still gets exactly one answer.
//!
//! [`Builder::queue`](crate::Builder::queue) with a [`RedisQueue`] makes
//! `enqueue` go through Redis: any host with workers for the pool may run
//! the request. A host may run callers only (a pool of 0 workers), workers
//! only, or both.
//!
//! # Who owns what
//!
//! * **The caller's ledger owns the answer and the overall deadline**
//!   (`caller`): a request id waits there with its oneshot; the first
//!   reply, the deadline or the caller's drop removes it, and whatever
//!   comes later is dropped and counted ([`QueueStats::late_replies`]).
//!   Redis may lose or repeat work; it never makes a second answer.
//! * **The executing host owns the attempt** (`executor`, `run`): it
//!   reads only as many entries as its pool has free capacity, runs each
//!   through its own supervisor with the per-attempt timeout, renews the
//!   lease of what runs every heartbeat, and cancels its worker when the
//!   lease is lost or the caller cancelled. **A reclaim counts as an
//!   attempt**: a request delivered for the n-th time runs with
//!   `max_attempts − n` retries left, so `retries` keeps its meaning, and
//!   one whose every delivery was lost fails with
//!   [`Error::HostLost`](crate::Error::HostLost).
//! * **The backend owns the fence** (`backend`: the object-safe
//!   `Backend` trait, implemented on Redis Streams by `streams`): completion, acknowledgement, deletion of the entry and
//!   the reply are one atomic step on the server (a Lua script), checked
//!   against the entry's owner *and* delivery count (`XACK` and `XCLAIM`
//!   alone check neither). A host that was paused and comes back finds its
//!   completions fenced. Everything else here is engine-free.
//! * `run()` is the scale-out task of one supervisor: it joins the
//!   caller's reply reader and cancel sender with the executor, and ends
//!   when the supervisor task finishes (it runs on the supervisor's task
//!   tracker, so it never outlives it).
//!
//! Request streams are never trimmed (`MAXLEN` deletes pending entries):
//! an entry is deleted by the script that completes it. Reply streams are
//! capped and expire. Redis's keys are in `streams::keys`, the entry and
//! reply encodings in `wire`, what a supervisor's parts share in `shared`,
//! the counters in `stats`.

pub(crate) mod backend;
pub(crate) mod batch;
pub(crate) mod caller;
pub(crate) mod executor;
pub(crate) mod lease;
#[cfg(test)]
mod memory;
pub(crate) mod pressure;
#[cfg(test)]
mod props;
pub(crate) mod run;
pub(crate) mod shared;
pub(crate) mod stats;
pub(crate) mod streams;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use stats::QueueStats;

use crate::error::ConfigError;
use crate::supervisor::LocalPort;

/// Default for [`RedisQueue::heartbeat`].
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default for [`RedisQueue::min_idle`].
pub const DEFAULT_MIN_IDLE: Duration = Duration::from_secs(5);
/// Default for [`RedisQueue::janitor`].
pub const DEFAULT_JANITOR: Duration = Duration::from_millis(500);
/// Default for [`RedisQueue::block`].
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(1);
/// Default for [`RedisQueue::min_available_memory`]: a host whose
/// available memory is below this share of the machine's reads no work.
pub const DEFAULT_MIN_AVAILABLE_PERCENT: u64 = 5;
/// Default for [`RedisQueue::reply_ttl`].
pub const DEFAULT_REPLY_TTL: Duration = Duration::from_secs(600);

/// One request queue per pool on Redis Streams, shared by every host that
/// names the same Redis and namespace. Give it to
/// [`Builder::queue`](crate::Builder::queue).
///
/// The URL is `redis://[user:password@]host[:port][/db]`,
/// `rediss://…` (TLS, with rustls: the server's certificate is checked
/// against the system's roots, or [`tls_root_certificate`](Self::tls_root_certificate))
/// or `redis+unix:///path/to/redis.sock` (also `unix://`); the user and
/// password are Redis ACL credentials. [`Debug`](fmt::Debug) never prints
/// the URL, and no error or log line carries the password.
#[derive(Clone)]
pub struct RedisQueue {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) host: Option<String>,
    pub(crate) heartbeat: Duration,
    pub(crate) min_idle: Duration,
    pub(crate) janitor: Duration,
    pub(crate) block: Duration,
    pub(crate) reply_ttl: Duration,
    /// PEM roots for `rediss://` instead of the system's.
    pub(crate) tls_root: Option<Vec<u8>>,
    /// Below this many available bytes the host takes no work; `None`:
    /// [`DEFAULT_MIN_AVAILABLE_PERCENT`] of the machine's memory.
    pub(crate) min_available_memory: Option<u64>,
}

impl RedisQueue {
    /// A queue on the Redis at `url`, with keys under `namespace` (every
    /// host of one deployment names the same).
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> RedisQueue {
        RedisQueue {
            url: url.into(),
            namespace: namespace.into(),
            host: None,
            heartbeat: DEFAULT_HEARTBEAT,
            min_idle: DEFAULT_MIN_IDLE,
            janitor: DEFAULT_JANITOR,
            block: DEFAULT_BLOCK,
            reply_ttl: DEFAULT_REPLY_TTL,
            tls_root: None,
            min_available_memory: None,
        }
    }

    /// For `rediss://`: trust the certificate authorities of this PEM
    /// bundle instead of the system's roots (a private CA).
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// This host's name (default: the machine's hostname): what
    /// [`Response::host`](crate::Response::host) says on the caller's side,
    /// and the start of this host's consumer name.
    pub fn host(mut self, name: impl Into<String>) -> Self {
        self.host = Some(name.into());
        self
    }

    /// How often the lease of each running request is renewed, and the
    /// cancellation flags polled (default [`DEFAULT_HEARTBEAT`]).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long a delivered request may go without a renewal before
    /// another host may reclaim it (default [`DEFAULT_MIN_IDLE`]; at least
    /// three heartbeats).
    pub fn min_idle(mut self, after: Duration) -> Self {
        self.min_idle = after;
        self
    }

    /// How often this host looks for reclaimable requests (default
    /// [`DEFAULT_JANITOR`]). The reclaim time after a host dies is about
    /// `min_idle + janitor`.
    pub fn janitor(mut self, every: Duration) -> Self {
        self.janitor = every;
        self
    }

    /// How long one blocking read (`XREAD`/`XREADGROUP … BLOCK`) waits
    /// (default [`DEFAULT_BLOCK`]); a stopping host waits at most this long
    /// for its readers.
    pub fn block(mut self, wait: Duration) -> Self {
        self.block = wait;
        self
    }

    /// How long a caller's reply stream and the cancel flags live after
    /// their last use (default [`DEFAULT_REPLY_TTL`]): the replies
    /// of a caller host that died expire unread after this.
    pub fn reply_ttl(mut self, ttl: Duration) -> Self {
        self.reply_ttl = ttl;
        self
    }

    /// Memory pressure: while the host's available memory (`MemAvailable`
    /// of `/proc/meminfo`) is below `bytes`, it reads no new request and
    /// claims none (what runs goes on), and
    /// [`QueueStats::under_pressure`] says so. Default
    /// [`DEFAULT_MIN_AVAILABLE_PERCENT`] % of the machine's memory; 0 turns
    /// the gate off.
    pub fn min_available_memory(mut self, bytes: u64) -> Self {
        self.min_available_memory = Some(bytes);
        self
    }

    /// The first setting out of range, if any.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError::SharedQueue(why.to_owned()));
        if self.namespace.is_empty() {
            return bad("the namespace is empty");
        }
        if self.namespace.contains(['{', '}']) || self.namespace.chars().any(char::is_whitespace) {
            return bad("the namespace may not hold braces or whitespace");
        }
        if self
            .host
            .as_deref()
            .is_some_and(|h| h.is_empty() || h.chars().any(char::is_whitespace))
        {
            return bad("the host name is empty or holds whitespace");
        }
        match self.scheme() {
            Some("redis" | "rediss" | "redis+unix" | "unix") => {}
            _ => return bad("the URL must start with redis://, rediss://, redis+unix:// or unix://"),
        }
        if let Some(pem) = &self.tls_root {
            if self.scheme() != Some("rediss") {
                return bad("a TLS root certificate needs a rediss:// URL");
            }
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return bad("the TLS root certificate holds no PEM certificate");
            }
        }
        if self.client().is_err() {
            // The parser's message may quote the URL: not repeated here.
            return bad("the URL (or the TLS root certificate) does not parse");
        }
        if self.heartbeat.is_zero() || self.janitor.is_zero() || self.block < Duration::from_millis(1) {
            return bad("heartbeat, janitor and block must be greater than zero");
        }
        if self.min_idle < self.heartbeat * 3 {
            return bad("min_idle must be at least three heartbeats");
        }
        if self.reply_ttl < Duration::from_secs(1) {
            return bad("reply_ttl must be at least one second");
        }
        Ok(())
    }

    /// A client for the URL (and the TLS roots, if any); connects nothing.
    pub(crate) fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls_root {
            None => redis::Client::open(self.url.as_str()),
            Some(pem) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
    }

    /// The URL's scheme, the part before `://`.
    fn scheme(&self) -> Option<&str> {
        self.url.split_once("://").map(|(s, _)| s)
    }
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("scheme", &self.scheme().unwrap_or("?"))
            .field("namespace", &self.namespace)
            .field("host", &self.host)
            .field("heartbeat", &self.heartbeat)
            .field("min_idle", &self.min_idle)
            .field("janitor", &self.janitor)
            .field("block", &self.block)
            .field("reply_ttl", &self.reply_ttl)
            .field("min_available_memory", &self.min_available_memory)
            .field("tls_root", &self.tls_root.is_some())
            .finish_non_exhaustive()
    }
}

/// The scale-out task of one supervisor: the caller's reply reader and
/// cancel sender, and the executor of every pool, until `stop` (the
/// supervisor task is finishing). Then the executor hands back what it
/// holds and the caller's waiting requests end with
/// [`Error::ShuttingDown`](crate::Error::ShuttingDown).
pub(crate) async fn run(
    shared: Arc<shared::Shared>,
    caller: Arc<caller::Caller>,
    outbox: caller::Outbox,
    port: LocalPort,
    stop: CancellationToken,
) {
    let replies = caller::read_replies(&caller, &stop);
    let outbox = caller::send_outbox(&shared, outbox, &stop);
    let executor = executor::Executor::new(Arc::clone(&shared), port).run(stop.clone());
    tokio::join!(replies, outbox, executor);
    caller.abandon();
    shared.backend.disconnect();
}
