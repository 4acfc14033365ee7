//! What the caller and the executor of one supervisor share: the
//! timers, this host's name and pools, the [`Backend`], the memory gate
//! and the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::backend::{Backend, BackendError};
use super::pressure::Pressure;
use super::stats::Counters;
use super::RedisQueue;
use crate::error::Error;

/// The timers of the engine-free logic, from [`RedisQueue`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub(crate) heartbeat: Duration,
    pub(crate) min_idle: Duration,
    pub(crate) janitor: Duration,
    pub(crate) block: Duration,
}

/// The scale-out state of one supervisor, behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) timers: Timers,
    /// This host's name ([`RedisQueue::host`] or the hostname).
    pub(crate) host: String,
    /// The pools this host declares, in order.
    pub(crate) pools: Vec<String>,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) counters: Counters,
    /// This host's memory pressure gate.
    pub(crate) pressure: Pressure,
}

impl Shared {
    /// The shared state for a checked `cfg` and its `pools`, on Redis;
    /// connects nothing yet.
    pub(crate) fn open(cfg: &RedisQueue, pools: Vec<String>) -> Result<Self, crate::error::ConfigError> {
        let host = cfg.host.clone().unwrap_or_else(hostname);
        let consumer = format!("{host}-{}-{}", std::process::id(), start_ms());
        let backend = super::streams::RedisBackend::new(cfg, &pools, consumer)?;
        let timers = Timers {
            heartbeat: cfg.heartbeat,
            min_idle: cfg.min_idle,
            janitor: cfg.janitor,
            block: cfg.block,
        };
        let pressure = Pressure::new(cfg.min_available_memory, super::DEFAULT_MIN_AVAILABLE_PERCENT);
        Ok(Self::new(timers, host, pools, Box::new(backend), pressure))
    }

    /// The shared state of `host`'s `pools` on `backend`.
    pub(crate) fn new(
        timers: Timers,
        host: String,
        pools: Vec<String>,
        backend: Box<dyn Backend>,
        pressure: Pressure,
    ) -> Self {
        Self {
            timers,
            host,
            pools,
            backend,
            counters: Counters::default(),
            pressure,
        }
    }

    /// `e` as [`Error::Queue`], counted (its message holds no credential).
    pub(crate) fn queue_error(&self, e: &BackendError) -> Error {
        self.counters.outcome(false);
        Error::Queue(e.message.clone())
    }

    /// Counts the outcome of a backend call; its value if it succeeded.
    pub(crate) fn counted<T>(&self, r: Result<T, BackendError>) -> Result<T, Error> {
        match r {
            Ok(v) => {
                self.counters.outcome(true);
                Ok(v)
            }
            Err(e) => Err(self.queue_error(&e)),
        }
    }
}

/// The machine's hostname, or `"host"` if it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// Wall-clock milliseconds at start, strictly increasing within the
/// process: two supervisors of one process get two consumer names.
fn start_ms() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let prev = LAST.fetch_max(now, Ordering::Relaxed);
    if prev >= now {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

/// A retry delay that doubles from 50 ms to 1 s, reset by a success.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(50))
    }
}

impl Backoff {
    /// Sleeps the delay (or until `stop`), then doubles it.
    pub(crate) async fn wait(&mut self, stop: &CancellationToken) {
        tokio::select! {
            () = tokio::time::sleep(self.0) => {}
            () = stop.cancelled() => {}
        }
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }

    /// Back to the shortest delay.
    pub(crate) fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }
}
