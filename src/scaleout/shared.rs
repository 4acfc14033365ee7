//! What the caller and the executor of one supervisor share: the settings,
//! the keys, this incarnation's consumer name, the connections and the
//! counters.
//!
//! * Ordinary commands and scripts go through one lazy
//!   [`ConnectionManager`]: it connects on first use, reconnects by itself
//!   after Redis restarts, and bounds every command with a response
//!   timeout, so a Redis that is down fails a call fast
//!   ([`Error::Queue`](crate::Error::Queue)).
//! * Blocking reads (`XREAD`/`XREADGROUP … BLOCK`) stall every command
//!   queued behind them on a multiplexed connection: each reading loop has
//!   a connection of its own ([`Shared::blocking`]), whose response
//!   timeout is above the block time.
//! * Errors are turned into [`Error::Queue`](crate::Error::Queue) with the
//!   URL's password taken out ([`Shared::queue_error`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::keys::Keys;
use super::pressure::Pressure;
use super::stats::Counters;
use super::RedisQueue;
use crate::error::Error;

/// Each ordinary command's response timeout.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Each connection attempt's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The scale-out state of one supervisor, behind an `Arc`.
pub(crate) struct Shared {
    pub(crate) cfg: RedisQueue,
    pub(crate) keys: Keys,
    /// This host's name ([`RedisQueue::host`] or the hostname).
    pub(crate) host: String,
    /// `<host>-<pid>-<start ms>`: unique per incarnation.
    pub(crate) consumer: String,
    /// This incarnation's reply stream.
    pub(crate) reply_key: String,
    /// The pools this host declares, in order.
    pub(crate) pools: Vec<String>,
    pub(crate) counters: Counters,
    /// This host's memory pressure gate.
    pub(crate) pressure: Pressure,
    client: Client,
    manager_cfg: ConnectionManagerConfig,
    /// Taken out at stop ([`Shared::disconnect`]): a stopped supervisor's
    /// handle keeps no connection open.
    manager: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queue", &self.cfg)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state for a checked `cfg`; connects nothing yet.
    pub(crate) fn new(cfg: RedisQueue, pools: Vec<String>) -> Result<Self, crate::error::ConfigError> {
        let refuse =
            |_| crate::error::ConfigError::SharedQueue("the URL does not parse as a Redis URL".into());
        let client = cfg.client().map_err(refuse)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_cfg.clone()).map_err(refuse)?;
        let host = cfg.host.clone().unwrap_or_else(hostname);
        let consumer = format!("{host}-{}-{}", std::process::id(), start_ms());
        let keys = Keys::new(&cfg.namespace);
        Ok(Self {
            reply_key: keys.replies(&consumer),
            keys,
            host,
            consumer,
            pools,
            counters: Counters::default(),
            pressure: Pressure::new(cfg.min_available_memory, super::DEFAULT_MIN_AVAILABLE_PERCENT),
            cfg,
            client,
            manager_cfg,
            manager: Mutex::new(Some(manager)),
        })
    }

    /// The shared connection for ordinary commands (a cheap clone). After
    /// [`disconnect`](Self::disconnect), a lazy one of its own, closed
    /// with its last clone.
    pub(crate) fn conn(&self) -> ConnectionManager {
        let kept = self.manager.lock().unwrap_or_else(|e| e.into_inner()).clone();
        kept.unwrap_or_else(|| {
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_cfg.clone())
                .expect("the configuration was accepted at start")
        })
    }

    /// Lets go of the shared connection, once the scale-out task has ended.
    pub(crate) fn disconnect(&self) {
        self.manager.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// A connection of its own for a blocking read loop.
    pub(crate) async fn blocking(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.cfg.block + RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// `e` as [`Error::Queue`], counted, without the URL's password.
    pub(crate) fn queue_error(&self, e: &RedisError) -> Error {
        self.counters.outcome(false);
        Error::Queue(scrub(&e.to_string(), &self.cfg.url))
    }

    /// Milliseconds for a `PX` argument.
    pub(crate) fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

/// `text` with the password of `url` (if it has one) replaced by `***`.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => text.replace(p, "***"),
        None => text.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn the_password_never_survives() {
        let url = "redis://app:s3cret@10.0.0.1:6379/0";
        assert_eq!(scrub("auth s3cret failed", url), "auth *** failed");
        assert_eq!(scrub("no secret here", "redis://10.0.0.1"), "no secret here");
        assert_eq!(scrub("x", "redis://:@h"), "x");
    }
}
