//! The [`Backend`] on Redis Streams: a stream and a consumer group per
//! pool, a reply stream per caller incarnation, the fence in Lua
//! ([`scripts`]), the key names in [`keys`].
//!
//! * Ordinary commands and scripts go through one lazy
//!   [`ConnectionManager`]: it connects on first use, reconnects by itself
//!   after Redis restarts, and bounds every command with a response
//!   timeout, so a Redis that is down fails a call fast.
//! * Blocking reads (`XREAD`/`XREADGROUP … BLOCK`) stall every command
//!   queued behind them on a multiplexed connection: each reading loop has
//!   a connection of its own ([`RedisReader`]), whose response timeout is
//!   above the longest block.
//! * Errors become [`BackendError`]s with the URL's password taken out
//!   ([`scrub`]).

pub(crate) mod keys;
pub(crate) mod scripts;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};

use self::keys::{Keys, GROUP};
use self::scripts::ReplyRules;
use super::backend::{
    Backend, BackendError, Claims, Completing, Completion, Delivery, Entry, ErrorKind, Held, Reader, Result,
};
use super::wire::Request;
use super::RedisQueue;
use crate::error::ConfigError;

/// Each ordinary command's response timeout.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Each connection attempt's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Replies read per `XREAD`.
const REPLY_BATCH: usize = 512;
/// A caller's reply stream's approximate cap: what its reader has not yet
/// read (it deletes what it reads). Above the default `max_queue`, so a
/// burst of replies to one caller is never trimmed unread.
pub(crate) const REPLY_CAP: u64 = 100_000;

/// One supervisor's view of the shared Redis.
pub(crate) struct RedisBackend {
    keys: Keys,
    /// `pools[i]`'s request stream.
    streams: Vec<String>,
    consumer: String,
    /// This incarnation's reply stream.
    reply_key: String,
    /// For [`scrub`].
    url: String,
    /// The longest block of a read: a reader's response timeout is above it.
    block: Duration,
    rules: ReplyRules,
    client: Client,
    manager_cfg: ConnectionManagerConfig,
    /// Taken out at stop ([`Backend::disconnect`]): a stopped supervisor's
    /// handle keeps no connection open.
    manager: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisBackend")
            .field("consumer", &self.consumer)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// The backend of consumer `consumer` for a checked `cfg` and its
    /// `pools`; connects nothing yet.
    pub(crate) fn new(
        cfg: &RedisQueue,
        pools: &[String],
        consumer: String,
    ) -> std::result::Result<Self, ConfigError> {
        let refuse = |_| ConfigError::SharedQueue("the URL does not parse as a Redis URL".into());
        let client = cfg.client().map_err(refuse)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_cfg.clone()).map_err(refuse)?;
        let keys = Keys::new(&cfg.namespace);
        Ok(Self {
            streams: pools.iter().map(|p| keys.requests(p)).collect(),
            reply_key: keys.replies(&consumer),
            keys,
            consumer,
            url: cfg.url.clone(),
            block: cfg.block,
            rules: ReplyRules {
                ttl_ms: ms(cfg.reply_ttl),
                cap: REPLY_CAP,
            },
            client,
            manager_cfg,
            manager: Mutex::new(Some(manager)),
        })
    }

    /// The shared connection for ordinary commands (a cheap clone). After
    /// [`disconnect`](Backend::disconnect), a lazy one of its own, closed
    /// with its last clone.
    fn conn(&self) -> ConnectionManager {
        let kept = self.manager.lock().unwrap_or_else(|e| e.into_inner()).clone();
        kept.unwrap_or_else(|| {
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_cfg.clone())
                .expect("the configuration was accepted at start")
        })
    }

    /// `r` with its error as a [`BackendError`].
    fn check<T>(&self, r: redis::RedisResult<T>) -> Result<T> {
        r.map_err(|e| error(&e, &self.url))
    }

    /// A `MultiplexedConnection` for blocking reads.
    async fn blocking(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.block + RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn reply_to(&self) -> &str {
        &self.reply_key
    }

    fn accepts_reply_to(&self, address: &str) -> bool {
        self.keys.is_replies(address)
    }

    async fn reader(&self) -> Result<Box<dyn Reader>> {
        let conn = self.check(self.blocking().await)?;
        Ok(Box::new(RedisReader {
            conn,
            streams: self.streams.clone(),
            consumer: self.consumer.clone(),
            reply_key: self.reply_key.clone(),
            last_reply: "0-0".to_owned(),
            url: self.url.clone(),
        }))
    }

    /// One `MULTI`/`EXEC` of `XADD`s, never trimmed. In a transaction the
    /// hosts blocked on a stream are woken once, after the whole batch, so
    /// the first takes as much of it as it has room for; without one,
    /// Redis wakes a host after each `XADD` and every host reads a single
    /// entry.
    async fn publish(&self, batch: &[(usize, Request)]) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (pool, request) in batch {
            pipe.cmd("XADD")
                .arg(&self.streams[*pool])
                .arg("*")
                .arg(&request.fields()[..])
                .ignore();
        }
        self.check(pipe.query_async(&mut self.conn()).await)
    }

    async fn cancel(&self, rids: &[String]) -> Result<()> {
        let mut pipe = redis::pipe();
        for rid in rids {
            pipe.cmd("SET")
                .arg(self.keys.cancel(rid))
                .arg(1)
                .arg("PX")
                .arg(self.rules.ttl_ms)
                .ignore();
        }
        self.check(pipe.query_async(&mut self.conn()).await)
    }

    async fn cancelled(&self, rids: &[&str]) -> Result<Vec<bool>> {
        let keys: Vec<String> = rids.iter().map(|rid| self.keys.cancel(rid)).collect();
        let flags: Vec<Option<String>> =
            self.check(redis::cmd("MGET").arg(&keys).query_async(&mut self.conn()).await)?;
        Ok(flags.into_iter().map(|f| f.is_some()).collect())
    }

    async fn forget_replies(&self, ids: &[&str]) -> Result<()> {
        let _deleted: i64 = self.check(
            redis::cmd("XDEL")
                .arg(&self.reply_key)
                .arg(ids)
                .query_async(&mut self.conn())
                .await,
        )?;
        Ok(())
    }

    async fn prepare(&self, pool: usize) -> Result<()> {
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.streams[pool])
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match made {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => self.check(other),
        }
    }

    async fn claim(&self, pool: usize, min_idle: Duration, n: usize) -> Result<Claims> {
        let stream = &self.streams[pool];
        let claimed = scripts::claim(&mut self.conn(), stream, &self.consumer, ms(min_idle), n).await;
        let (claimed, deleted) = self.check(claimed)?;
        Ok(Claims { claimed, deleted })
    }

    async fn renew(&self, pool: usize, held: &[(String, u32)]) -> Result<Vec<String>> {
        let stream = &self.streams[pool];
        self.check(scripts::renew(&mut self.conn(), stream, &self.consumer, held).await)
    }

    async fn complete(&self, pool: usize, batch: &[Completing]) -> Result<Vec<Completion>> {
        let stream = &self.streams[pool];
        let done = scripts::complete(&mut self.conn(), stream, &self.consumer, self.rules, batch).await;
        self.check(done)
    }

    async fn hand_back(&self, d: &Delivery) -> Result<bool> {
        let stream = &self.streams[d.pool];
        self.check(scripts::handback(&mut self.conn(), stream, &self.consumer, d).await)
    }

    async fn discard(&self, d: &Delivery) -> Result<()> {
        let stream = &self.streams[d.pool];
        let dropped = redis::pipe()
            .cmd("XACK")
            .arg(stream)
            .arg(GROUP)
            .arg(&d.id)
            .ignore()
            .cmd("XDEL")
            .arg(stream)
            .arg(&d.id)
            .ignore()
            .query_async(&mut self.conn())
            .await;
        self.check(dropped)
    }

    async fn pending(&self, pool: usize, max: usize) -> Result<Vec<Held>> {
        let pending: Vec<(String, String, u64, u32)> = self.check(
            redis::cmd("XPENDING")
                .arg(&self.streams[pool])
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(max)
                .arg(&self.consumer)
                .query_async(&mut self.conn())
                .await,
        )?;
        Ok(pending
            .into_iter()
            .map(|(id, _, idle, deliveries)| Held {
                id,
                idle: Duration::from_millis(idle),
                deliveries,
            })
            .collect())
    }

    fn disconnect(&self) {
        self.manager.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A blocking connection of one reading loop.
struct RedisReader {
    conn: MultiplexedConnection,
    streams: Vec<String>,
    consumer: String,
    reply_key: String,
    /// The id of the last reply read.
    last_reply: String,
    url: String,
}

#[async_trait]
impl Reader for RedisReader {
    async fn requests(&mut self, pool: usize, n: usize, wait: Duration) -> Result<Vec<Entry>> {
        let v: redis::RedisResult<redis::Value> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(n)
            .arg("BLOCK")
            .arg(ms(wait))
            .arg("STREAMS")
            .arg(&self.streams[pool])
            .arg(">")
            .query_async(&mut self.conn)
            .await;
        v.map(scripts::entries).map_err(|e| error(&e, &self.url))
    }

    async fn replies(&mut self, wait: Duration) -> Result<Vec<Entry>> {
        let v: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(REPLY_BATCH)
            .arg("BLOCK")
            .arg(ms(wait))
            .arg("STREAMS")
            .arg(&self.reply_key)
            .arg(&self.last_reply)
            .query_async(&mut self.conn)
            .await;
        let entries = v.map(scripts::entries).map_err(|e| error(&e, &self.url))?;
        if let Some(e) = entries.last() {
            self.last_reply.clone_from(&e.id);
        }
        Ok(entries)
    }
}

/// `e` as a [`BackendError`], without `url`'s password.
fn error(e: &RedisError, url: &str) -> BackendError {
    let kind = if e.code() == Some("NOGROUP") {
        ErrorKind::Missing
    } else if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Transient
    } else {
        ErrorKind::Other
    };
    BackendError {
        kind,
        message: scrub(&e.to_string(), url),
    }
}

/// Milliseconds for a `PX` or `BLOCK` argument (at least 1).
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
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
