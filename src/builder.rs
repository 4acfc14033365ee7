//! Configuration: [`Builder`] and the `DEFAULT_*` values every setter cites
//! (pools and worker specs are in `pool.rs`).
//!
//! A configuration is validated once, in [`Builder::spawn`] /
//! [`Builder::start`], before any process is spawned.

use std::sync::Arc;
use std::time::Duration;

use crate::error::StartError;
use crate::pool::{Backoff, Pool, Predicate, Settings};
use crate::supervisor::Supervisor;

/// Default for [`Builder::max_queue`]: requests waiting per pool.
pub const DEFAULT_MAX_QUEUE: usize = 65_536;
/// Default for [`Pool::concurrency`]: requests in flight per worker.
pub const DEFAULT_CONCURRENCY: usize = 1024;
/// Default for [`Builder::pulse`]: RSS sampling and heartbeat interval.
pub const DEFAULT_PULSE: Duration = Duration::from_secs(1);
/// Default for [`Builder::start_timeout`].
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`Builder::force_stop_delay`].
pub const DEFAULT_FORCE_STOP_DELAY: Duration = Duration::from_secs(5);
/// Default for [`Builder::restart_delay`] (systemd's `RestartSec`).
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(100);
/// Default for [`Builder::max_restarts`] (load-process-manager's default).
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// Default for [`Builder::restart_window`] (load-process-manager's default).
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(120);
/// Default for [`Builder::max_frame_len`].
pub const DEFAULT_MAX_FRAME_LEN: usize = nanny_worker::protocol::DEFAULT_MAX_FRAME_LEN;
/// Default for [`Builder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Default for [`Builder::unhealthy_timeout`] (the nanny seed's `unhealthyTimeout`).
pub const DEFAULT_UNHEALTHY_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`Builder::reload_delay`] (clustr-node's `reloadDelay`).
pub const DEFAULT_RELOAD_DELAY: Duration = Duration::from_millis(500);

/// Default for [`Builder::server_restart_delay`] (the nanny seed's
/// `serverRestartDelay`).
pub const DEFAULT_SERVER_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Everything the supervisor task reads; immutable once started.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) pools: Vec<Pool>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) retries: crate::Retries,
    pub(crate) max_queue: usize,
    pub(crate) pulse: Duration,
    /// The per-pool settings of every pool that does not set its own.
    pub(crate) defaults: Settings,
    pub(crate) max_frame_len: usize,
    pub(crate) event_capacity: usize,
    pub(crate) handle_signals: bool,
    pub(crate) listeners: Vec<crate::Listener>,
    pub(crate) server_restart_delay: Duration,
    pub(crate) health_events: u32,
    pub(crate) process_title: Option<String>,
    /// Workers' questions: handlers and permissions (see [`crate::asks`]).
    pub(crate) asks: crate::asks::AskConfig,
    /// Where silent pools' lines go (`on_output`); `None`: `tracing` events.
    pub(crate) output: Option<crate::output::Sink>,
    /// Sockets for the listeners of those names ([`Builder::inherit`]).
    pub(crate) inherited: Vec<(String, Arc<std::os::fd::OwnedFd>)>,
    /// Whether and with which program to contain descendants.
    pub(crate) descendants: crate::descendants::Choice,
    /// What start chose from it ([`crate::descendants::choose`]).
    pub(crate) init: Option<Arc<crate::descendants::Init>>,
    pub(crate) containment: Option<crate::Containment>,
    /// The queue shared with other hosts ([`Builder::queue`]).
    pub(crate) queue: Option<crate::RedisQueue>,
    /// The low-latency window ([`Builder::spin_before_park`]).
    pub(crate) spin: Option<Duration>,
}

/// Builds a [`Supervisor`]. Start from [`Supervisor::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use nanny::{Pool, Supervisor, WorkerSpec};
///
/// let supervisor = Supervisor::builder()
///     .pool(Pool::default_pool(WorkerSpec::new("./my-worker")).workers(4))
///     .request_timeout(Duration::from_secs(2))
///     .retries(1)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` or `spawn`"]
pub struct Builder {
    cfg: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            cfg: Config {
                pools: Vec::new(),
                request_timeout: None,
                retries: crate::Retries::default(),
                max_queue: DEFAULT_MAX_QUEUE,
                pulse: DEFAULT_PULSE,
                defaults: Settings {
                    start_timeout: DEFAULT_START_TIMEOUT,
                    drain_timeout: None,
                    force_stop_delay: Some(DEFAULT_FORCE_STOP_DELAY),
                    restart_delay: DEFAULT_RESTART_DELAY,
                    restart_backoff: None,
                    max_restarts: DEFAULT_MAX_RESTARTS,
                    restart_window: DEFAULT_RESTART_WINDOW,
                    unhealthy_timeout: Some(DEFAULT_UNHEALTHY_TIMEOUT),
                    is_healthy: None,
                    reload_delay: DEFAULT_RELOAD_DELAY,
                },
                max_frame_len: DEFAULT_MAX_FRAME_LEN,
                event_capacity: DEFAULT_EVENT_CAPACITY,
                handle_signals: false,
                listeners: Vec::new(),
                server_restart_delay: DEFAULT_SERVER_RESTART_DELAY,
                health_events: 1,
                process_title: None,
                asks: crate::asks::AskConfig::default(),
                output: None,
                inherited: Vec::new(),
                descendants: crate::descendants::Choice::default(),
                init: None,
                containment: None,
                queue: None,
                spin: None,
            },
        }
    }
}

impl Builder {
    /// Adds a pool. The first pool added is the one [`Supervisor::enqueue`] uses.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.cfg.pools.push(pool);
        self
    }

    /// Adds a listener: a socket the supervisor owns whose connections go
    /// to the workers of the listener's pool (see [`crate::listen`]). It is
    /// bound by [`spawn`](Self::spawn), before any worker starts.
    pub fn listen(mut self, listener: crate::Listener) -> Self {
        self.cfg.listeners.push(listener);
        self
    }

    /// How long a failed listener waits before it is restarted (default
    /// [`DEFAULT_SERVER_RESTART_DELAY`]).
    pub fn server_restart_delay(mut self, delay: Duration) -> Self {
        self.cfg.server_restart_delay = delay;
        self
    }

    /// Default per-attempt timeout (default: none, as in the seed). Override
    /// per request with [`EnqueueOptions::timeout`](crate::EnqueueOptions::timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.request_timeout = Some(timeout);
        self
    }

    /// Default number of retries after a transport failure (timeout, worker
    /// exit); default 0. `retries(n)` makes at most `n + 1` attempts;
    /// [`Retries::Unlimited`](crate::Retries::Unlimited) is the seed's
    /// `retries: -1`.
    pub fn retries(mut self, retries: impl Into<crate::Retries>) -> Self {
        self.cfg.retries = retries.into();
        self
    }

    /// Bound of each pool's queue of waiting requests (default
    /// [`DEFAULT_MAX_QUEUE`]); past it `enqueue` fails with
    /// [`Error::QueueFull`](crate::Error::QueueFull) at once.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.cfg.max_queue = n;
        self
    }

    /// RSS sampling and worker heartbeat interval (default [`DEFAULT_PULSE`]).
    pub fn pulse(mut self, pulse: Duration) -> Self {
        self.cfg.pulse = pulse;
        self
    }

    /// How long a new worker may take to say ready (default
    /// [`DEFAULT_START_TIMEOUT`]); past it the worker is stopped and counts as
    /// a failed start.
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::start_timeout`](crate::Pool::start_timeout).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.defaults.start_timeout = timeout;
        self
    }

    /// Time between the graceful stop request and SIGKILL (default
    /// [`DEFAULT_FORCE_STOP_DELAY`]); `None` never forces.
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::force_stop_delay`](crate::Pool::force_stop_delay).
    pub fn force_stop_delay(mut self, delay: Option<Duration>) -> Self {
        self.cfg.defaults.force_stop_delay = delay;
        self
    }

    /// Bound of every drain (default `None`: a drain waits until every
    /// in-flight request is finished, as the seed does). A drain is how a
    /// worker leaves gracefully: soft kill, resize down, recycling. Past the
    /// bound, the worker's in-flight attempts get a `Cancel`, their callers
    /// [`Error::DrainTimeout`](crate::Error::DrainTimeout), and the stop
    /// goes on (then [`force_stop_delay`](Self::force_stop_delay) until
    /// SIGKILL). A soft kill also fails what is still queued then. A worker
    /// that said `busy()` is not stopped before it says `ready()` again or
    /// this bound passes. systemd's `TimeoutStopSec` is the sum of the two;
    /// gunicorn calls this `graceful_timeout`.
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::drain_timeout`](crate::Pool::drain_timeout).
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.cfg.defaults.drain_timeout = timeout;
        self
    }

    /// Pause before an unexpectedly exited worker is replaced (default
    /// [`DEFAULT_RESTART_DELAY`]).
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::restart_delay`](crate::Pool::restart_delay).
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.cfg.defaults.restart_delay = delay;
        self
    }

    /// Restart budget: at most this many restarts per pool within
    /// [`restart_window`](Self::restart_window) (default
    /// [`DEFAULT_MAX_RESTARTS`]; alias systemd `StartLimitBurst`). Past it the
    /// pool is failed.
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::max_restarts`](crate::Pool::max_restarts).
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.cfg.defaults.max_restarts = n;
        self
    }

    /// The sliding window of the restart budget (default
    /// [`DEFAULT_RESTART_WINDOW`]; alias systemd `StartLimitIntervalSec`).
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::restart_window`](crate::Pool::restart_window).
    pub fn restart_window(mut self, window: Duration) -> Self {
        self.cfg.defaults.restart_window = window;
        self
    }

    /// Largest frame either side may send, in bytes (default
    /// [`DEFAULT_MAX_FRAME_LEN`]). Payloads larger than
    /// [`max_payload_len(n)`](nanny_worker::protocol::max_payload_len)
    /// (`n` − 256, the limit of requests and answers alike) fail with
    /// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge).
    pub fn max_frame_len(mut self, n: usize) -> Self {
        self.cfg.max_frame_len = n;
        self
    }

    /// Events kept for slow [`events`](Supervisor::events) subscribers
    /// (default [`DEFAULT_EVENT_CAPACITY`]); a subscriber that falls further
    /// behind misses the oldest and is told how many.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.cfg.event_capacity = n;
        self
    }

    /// A worker that sent no heartbeat for this long is stopped and replaced
    /// (default [`DEFAULT_UNHEALTHY_TIMEOUT`]; `None` never): its runtime is
    /// stalled, e.g. a handler blocks its thread. Must exceed
    /// [`pulse`](Self::pulse), the heartbeat interval.
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::unhealthy_timeout`](crate::Pool::unhealthy_timeout).
    pub fn unhealthy_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.cfg.defaults.unhealthy_timeout = timeout;
        self
    }

    /// A health predicate, checked on every heartbeat of a ready worker
    /// (default: always healthy). `false` retires the worker: a replacement
    /// is started, and once it is ready the old worker drains and stops.
    ///
    /// ```
    /// # let builder = nanny::Supervisor::builder();
    /// // The nanny seed's example: stay under 700 MB resident.
    /// let builder = builder.is_healthy(|h| h.rss_bytes < 700_000_000);
    /// ```
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::is_healthy`](crate::Pool::is_healthy).
    pub fn is_healthy<F>(mut self, f: F) -> Self
    where
        F: Fn(&crate::WorkerHealth) -> bool + Send + Sync + 'static,
    {
        self.cfg.defaults.is_healthy = Some(Predicate(Arc::new(f)));
        self
    }

    /// An [`Event::Health`](crate::Event::Health) for every `every`th
    /// heartbeat of each worker (each pulse, for a plain program, which
    /// sends none); default 1, every heartbeat (the nanny seed's `health`
    /// event); 0 sends none. Like every event, bounded by
    /// [`event_capacity`](Self::event_capacity): a subscriber that falls
    /// behind misses the oldest.
    pub fn health_events(mut self, every: u32) -> Self {
        self.cfg.health_events = every;
        self
    }

    /// Exponential restart delay in place of the fixed
    /// [`restart_delay`](Self::restart_delay) (default: none). See [`Backoff`].
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::restart_backoff`](crate::Pool::restart_backoff).
    pub fn restart_backoff(mut self, backoff: Backoff) -> Self {
        self.cfg.defaults.restart_backoff = Some(backoff);
        self
    }

    /// The pause between two workers of a rolling operation:
    /// [`reload`](Supervisor::reload), [`restart_all_workers`](Supervisor::restart_all_workers)
    /// (default [`DEFAULT_RELOAD_DELAY`]; clustr-node's `reloadDelay`; at
    /// most an hour).
    ///
    /// The default of every pool; a pool sets its own with
    /// [`Pool::reload_delay`](crate::Pool::reload_delay).
    pub fn reload_delay(mut self, delay: Duration) -> Self {
        self.cfg.defaults.reload_delay = delay;
        self
    }

    /// Take the process's signals (default off: a library does not take a
    /// host's signals): SIGINT, SIGTERM and SIGQUIT soft-kill, and any
    /// second one hard-kills; SIGHUP is a rolling
    /// [`reload`](Supervisor::reload) of every pool.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.cfg.handle_signals = on;
        self
    }

    /// What `ps` calls the processes (project-cluster's `name`; default:
    /// none, every process keeps its own name). Each worker is exec'd with
    /// `argv[0]` = `"{base} {name}"`, e.g. `myapp api:01` (its pool and slot,
    /// see [`WorkerSlot::name`](crate::WorkerSlot::name); a replacement
    /// keeps it), and gets it as `NANNY_PROCESS_TITLE`. The supervisor's own
    /// `comm` becomes `base`, cut to the kernel's 15 bytes: `ps -o comm`,
    /// `top` and `pgrep` show it, while `ps -o args` still shows its
    /// command line, which a Rust program cannot portably rewrite.
    ///
    /// Off by default because `argv[0]` is the program's to read: busybox
    /// and other multi-call binaries choose what to run by it, and some
    /// interpreters find their libraries through it. The worker's own
    /// `comm` stays its executable's file name (the kernel sets it at
    /// `exec`). `base` must be 1 to 64 bytes without NUL or line breaks
    /// ([`ConfigError::ProcessTitle`](crate::ConfigError::ProcessTitle)).
    pub fn process_title(mut self, base: impl Into<String>) -> Self {
        self.cfg.process_title = Some(base.into());
        self
    }

    /// Validates the configuration and spawns the workers, pool after pool
    /// (each once the one before it is ready); returns at once.
    /// Await [`Supervisor::ready`] to wait for them. Must be called inside a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] with the [`ConfigError`](crate::ConfigError) for the first setting
    /// out of range, or [`ConfigError::NotInRuntime`](crate::ConfigError::NotInRuntime); nothing is spawned.
    pub fn spawn(self) -> Result<Supervisor, StartError> {
        self.cfg.validate()?;
        if let Some(base) = &self.cfg.process_title {
            crate::worker::placement::set_own_title(base);
        }
        let mut cfg = self.cfg;
        cfg.resolve_forwarding();
        crate::supervisor::spawn(cfg)
    }

    /// [`spawn`](Self::spawn), then wait until every worker has said ready.
    pub async fn start(self) -> Result<Supervisor, StartError> {
        let supervisor = self.spawn()?;
        match supervisor.ready().await {
            Ok(()) => Ok(supervisor),
            Err(crate::Error::PoolFailed { pool } | crate::Error::SlotParked { pool, .. }) => {
                supervisor.hard_kill().await;
                Err(StartError::PoolFailed { pool })
            }
            Err(_) => Err(StartError::Stopped),
        }
    }
}

#[cfg(test)]
impl Builder {
    /// The configuration built so far, for unit tests elsewhere in the crate.
    pub(crate) fn into_config(self) -> Config {
        self.cfg
    }
}

mod asks;
mod descendants;
mod inherit;
mod latency;
pub use latency::MAX_SPIN_WINDOW;
mod output;
mod placement;
mod plain;
mod queue;
#[cfg(test)]
mod tests;
mod validate;
