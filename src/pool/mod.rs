//! What a pool is made of: [`WorkerSpec`] (how to start one worker),
//! [`Pool`] (how many, with which ids, environment, output capture,
//! restart policy and recycling rules), [`RestartPolicy`] and [`Backoff`].
//!
//! Familiar names, for readers coming from other supervisors:
//!
//! | nanny | nanny / clustermon seed | pm2 / gunicorn / systemd / OTP |
//! |---|---|---|
//! | [`WorkerSpec::new`] + [`WorkerSpec::args`] | `execPath`, `execArgv` | `ExecStart` |
//! | [`Pool::workers`] | `workerCount`, `numCPUs` | `instances` |
//! | [`Pool::logical_ids`] | `logicalIds` | |
//! | [`Pool::create_environment`] | `createEnvironment` | |
//! | [`Pool::silent`] | `silent` | |
//! | [`Pool::restart`] | | systemd `Restart=`, OTP restart type |
//! | [`Pool::respawn_count`] | `respawnWorkerCount` | |
//! | [`Pool::max_requests`] + jitter | | gunicorn `max_requests`, `max_requests_jitter` |
//! | [`Pool::max_request_duration`] | | uWSGI `harakiri` |
//! | [`Backoff`] | | pm2 `exp_backoff_restart_delay` |
//! | [`WorkerSpec::plain`] | | systemd `Type=exec` |
//! | [`Pool::readiness`] | | Kubernetes `readinessProbe` |
//! | [`Pool::cpu_affinity`], [`Pool::cpu_per_worker`] | clustr-node `cpu` | `taskset`, systemd `CPUAffinity=` |
//! | [`Pool::user`], [`Pool::group`], [`Pool::rlimit`] | | pm2 `uid` / `gid`, systemd `User=`, `Group=`, `LimitNOFILE=` |
//! | [`Pool::fd_channel`] ([`FdChannelFlavor::Node`]) | | Node.js `child_process.fork`'s IPC channel |
//!
//! A pool may also set its own timers, restart budget and health rules
//! ([`Pool::start_timeout`], [`Pool::drain_timeout`],
//! [`Pool::force_stop_delay`], [`Pool::restart_delay`] /
//! [`Pool::restart_backoff`], [`Pool::max_restarts`] /
//! [`Pool::restart_window`], [`Pool::unhealthy_timeout`],
//! [`Pool::is_healthy`], [`Pool::reload_delay`]); what it does not set it
//! takes from the builder (project-cluster sets these per cluster, pm2 per
//! app).

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::DEFAULT_CONCURRENCY;

/// The name of the pool [`Pool::default_pool`] creates.
pub const DEFAULT_POOL: &str = "default";

/// When a worker that exited on its own is replaced (systemd's words for
/// OTP's restart types).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Always (OTP `permanent`): any exit the supervisor did not ask for.
    #[default]
    Always,
    /// Only after a failure (OTP `transient`): a non-zero exit code, a
    /// signal, or a stop by the supervisor for a failed health check,
    /// protocol error or start timeout. A clean `exit(0)` leaves the slot empty.
    OnFailure,
    /// Never (OTP `temporary`): the slot stays empty.
    No,
}

/// Exponential restart delay (pm2's `exp_backoff_restart_delay`): the `n`th
/// consecutive failure of a slot waits `initial × multiplierⁿ⁻¹`, at most
/// `max`; a worker that stayed up `reset_after` resets the count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// Growth per consecutive failure (at least 1).
    pub multiplier: f64,
    /// The largest delay.
    pub max: Duration,
    /// Uptime after which a worker counts as stable.
    pub reset_after: Duration,
}

impl Backoff {
    /// pm2's numbers: ×1.5 per failure, at most 15 s, reset after 30 s up.
    pub fn exponential(initial: Duration) -> Self {
        Self {
            initial,
            multiplier: 1.5,
            max: Duration::from_secs(15),
            reset_after: Duration::from_secs(30),
        }
    }

    /// The delay before the restart that follows `failures` consecutive
    /// failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        Duration::try_from_secs_f64(secs).map_or(self.max, |d| d.min(self.max))
    }
}

/// Decides whether a worker is healthy from its latest report.
pub(crate) type HealthCheck = Arc<dyn Fn(&crate::WorkerHealth) -> bool + Send + Sync>;
/// [`HealthCheck`] with a `Debug` impl, for the configuration.
#[derive(Clone)]
pub(crate) struct Predicate(pub(crate) HealthCheck);

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("is_healthy(..)")
    }
}

/// Builds a worker's extra environment from its logical id.
pub(crate) type EnvFactory = Arc<dyn Fn(u64) -> Vec<(OsString, OsString)> + Send + Sync>;

/// A named group of identical workers.
#[derive(Clone)]
pub struct Pool {
    pub(crate) name: String,
    pub(crate) spec: WorkerSpec,
    pub(crate) workers: usize,
    pub(crate) workers_set: bool,
    pub(crate) concurrency: usize,
    pub(crate) logical_ids: Option<Vec<u64>>,
    pub(crate) create_environment: Option<EnvFactory>,
    pub(crate) silent: bool,
    pub(crate) restart: RestartPolicy,
    pub(crate) respawn_count: Option<u32>,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_requests_jitter: u64,
    pub(crate) max_request_duration: Option<Duration>,
    pub(crate) readiness: Option<crate::Readiness>,
    pub(crate) settings: Overrides,
    pub(crate) cpus: affinity::Cpus,
    /// What its workers may ask, and the arguments it forwards.
    pub(crate) asks: crate::asks::PoolAsks,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("workers", &self.workers)
            .field("concurrency", &self.concurrency)
            .field("logical_ids", &self.logical_ids)
            .field("create_environment", &self.create_environment.is_some())
            .field("silent", &self.silent)
            .field("restart", &self.restart)
            .field("respawn_count", &self.respawn_count)
            .field("max_requests", &self.max_requests)
            .field("max_requests_jitter", &self.max_requests_jitter)
            .field("max_request_duration", &self.max_request_duration)
            .field("readiness", &self.readiness)
            .field("settings", &self.settings)
            .field("cpus", &self.cpus)
            .field("asks", &self.asks)
            .finish()
    }
}

impl Pool {
    /// The most workers a pool may have ([`workers`](Self::workers),
    /// [`Supervisor::resize`](crate::Supervisor::resize),
    /// [`Supervisor::add_worker`](crate::Supervisor::add_worker)): a bound
    /// that keeps a typo (`scale web 100000`) from exhausting the
    /// machine's processes and descriptors; each worker holds two or three
    /// of the supervisor's descriptors.
    pub const MAX_WORKERS: usize = 4096;

    /// A pool called `name` of workers started from `spec`, with one worker
    /// per available core.
    pub fn new(name: impl Into<String>, spec: WorkerSpec) -> Self {
        Self {
            name: name.into(),
            spec,
            workers: default_workers(),
            workers_set: false,
            concurrency: DEFAULT_CONCURRENCY,
            logical_ids: None,
            create_environment: None,
            silent: false,
            restart: RestartPolicy::Always,
            respawn_count: None,
            max_requests: None,
            max_requests_jitter: 0,
            max_request_duration: None,
            readiness: None,
            settings: Overrides::default(),
            cpus: affinity::Cpus::default(),
            asks: crate::asks::PoolAsks::default(),
        }
    }

    /// A pool called [`DEFAULT_POOL`].
    pub fn default_pool(spec: WorkerSpec) -> Self {
        Self::new(DEFAULT_POOL, spec)
    }

    /// How many workers to keep (default: number of cores the process may
    /// use, or the number of [`logical_ids`](Self::logical_ids)). Must be at
    /// least 1 and at most [`MAX_WORKERS`](Self::MAX_WORKERS); change it at runtime with [`Supervisor::resize`](crate::Supervisor::resize).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self.workers_set = true;
        self
    }

    /// Requests in flight per worker (default [`DEFAULT_CONCURRENCY`]); past
    /// it, requests wait in the pool's queue.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The logical ids the workers get, in order, as `PROCESS_LOGICAL_ID`
    /// (default: `0, 1, 2…`). A replacement keeps its predecessor's. Sets
    /// the worker count unless [`workers`](Self::workers) is given too, in
    /// which case the two must agree.
    pub fn logical_ids(mut self, ids: impl IntoIterator<Item = u64>) -> Self {
        let ids: Vec<u64> = ids.into_iter().collect();
        if !self.workers_set {
            self.workers = ids.len();
        }
        self.logical_ids = Some(ids);
        self
    }

    /// Extra environment per worker, from its logical id (the seed's
    /// `createEnvironment`). Applied last, so it overrides everything else.
    pub fn create_environment<F, I, K, V>(mut self, f: F) -> Self
    where
        F: Fn(u64) -> I + Send + Sync + 'static,
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.create_environment = Some(Arc::new(move |id| {
            f(id).into_iter().map(|(k, v)| (k.into(), v.into())).collect()
        }));
        self
    }

    /// Capture each worker's stdout and stderr line by line into `tracing`
    /// (target `nanny::worker`, with the worker's id and pool) instead of
    /// inheriting the supervisor's (default `false`). Lines that look like
    /// errors or warnings are counted per worker.
    pub fn silent(mut self, silent: bool) -> Self {
        self.silent = silent;
        self
    }

    /// When to replace a worker that exited on its own (default
    /// [`RestartPolicy::Always`]).
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// At most this many consecutive failed starts of one slot (exit or
    /// start timeout before ready) before the pool fails (default: no cap;
    /// the seed's `respawnWorkerCount`, where -1 meant no cap).
    pub fn respawn_count(mut self, n: Option<u32>) -> Self {
        self.respawn_count = n;
        self
    }

    /// Retire a worker after it answered this many requests, plus a random
    /// `0..=jitter` of its own so that workers do not all retire at once
    /// (gunicorn's `max_requests` and `max_requests_jitter`; default: never).
    /// The replacement is ready before the old worker drains.
    pub fn max_requests(mut self, n: u64, jitter: u64) -> Self {
        self.max_requests = Some(n);
        self.max_requests_jitter = jitter;
        self
    }

    /// Retire a worker when one request has run this long on it (uWSGI's
    /// `harakiri`; default: never). A replacement is started first; the old
    /// worker then gets `force_stop_delay` to finish before it is killed, and
    /// its unfinished requests are retried under their own retry budget.
    pub fn max_request_duration(mut self, d: Duration) -> Self {
        self.max_request_duration = Some(d);
        self
    }

    /// A readiness probe for the pool's new workers (default: none; see
    /// [`crate::readiness`]). A protocol worker is ready when it said
    /// `Ready` and its probe passed, a [plain](WorkerSpec::plain) one when
    /// its probe passed; recycling waits for the same before the worker
    /// being replaced drains.
    pub fn readiness(mut self, probe: crate::Readiness) -> Self {
        self.readiness = Some(probe);
        self
    }

    /// This pool's [`Builder::start_timeout`](crate::Builder::start_timeout)
    /// (default: the builder's).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.settings.start_timeout = Some(timeout);
        self
    }

    /// This pool's [`Builder::drain_timeout`](crate::Builder::drain_timeout)
    /// (default: the builder's; `None` here means no bound for this pool).
    pub fn drain_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.drain_timeout = Some(timeout);
        self
    }

    /// This pool's [`Builder::force_stop_delay`](crate::Builder::force_stop_delay)
    /// (default: the builder's; `None` here means never force).
    pub fn force_stop_delay(mut self, delay: Option<Duration>) -> Self {
        self.settings.force_stop_delay = Some(delay);
        self
    }

    /// This pool's fixed [`Builder::restart_delay`](crate::Builder::restart_delay)
    /// (default: the builder's). It replaces a
    /// [`restart_backoff`](crate::Builder::restart_backoff) set on the
    /// builder, for this pool.
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.settings.restart_delay = Some(delay);
        self.settings.restart_backoff = Some(None);
        self
    }

    /// This pool's [`Builder::restart_backoff`](crate::Builder::restart_backoff)
    /// (default: the builder's).
    pub fn restart_backoff(mut self, backoff: Backoff) -> Self {
        self.settings.restart_backoff = Some(Some(backoff));
        self
    }

    /// This pool's restart budget, [`Builder::max_restarts`](crate::Builder::max_restarts)
    /// (default: the builder's). Each pool has its own budget either way.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.settings.max_restarts = Some(n);
        self
    }

    /// This pool's [`Builder::restart_window`](crate::Builder::restart_window)
    /// (default: the builder's).
    pub fn restart_window(mut self, window: Duration) -> Self {
        self.settings.restart_window = Some(window);
        self
    }

    /// This pool's [`Builder::unhealthy_timeout`](crate::Builder::unhealthy_timeout)
    /// (default: the builder's; `None` here means never, for this pool).
    pub fn unhealthy_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.unhealthy_timeout = Some(timeout);
        self
    }

    /// This pool's health predicate, in place of the builder's
    /// [`is_healthy`](crate::Builder::is_healthy) (default: the builder's).
    pub fn is_healthy<F>(mut self, f: F) -> Self
    where
        F: Fn(&crate::WorkerHealth) -> bool + Send + Sync + 'static,
    {
        self.settings.is_healthy = Some(Predicate(Arc::new(f)));
        self
    }

    /// This pool's [`Builder::reload_delay`](crate::Builder::reload_delay)
    /// (default: the builder's).
    pub fn reload_delay(mut self, delay: Duration) -> Self {
        self.settings.reload_delay = Some(delay);
        self
    }

    /// Its workers run as `user` ([`WorkerSpec::user`], on the pool's
    /// spec; an [`update_pool`](crate::Supervisor::update_pool) spec
    /// brings its own).
    pub fn user(mut self, user: impl Into<NameOrId>) -> Self {
        self.spec = self.spec.user(user);
        self
    }

    /// Its workers' group ([`WorkerSpec::group`], on the pool's spec).
    pub fn group(mut self, group: impl Into<NameOrId>) -> Self {
        self.spec = self.spec.group(group);
        self
    }

    /// A resource limit of its workers ([`WorkerSpec::rlimit`], on the
    /// pool's spec).
    pub fn rlimit(mut self, resource: Rlimit, soft: u64, hard: u64) -> Self {
        self.spec = self.spec.rlimit(resource, soft, hard);
        self
    }

    /// How its workers take descriptors ([`WorkerSpec::fd_channel`], on
    /// the pool's spec): [`FdChannelFlavor::Node`] for `node` workers.
    pub fn fd_channel(mut self, flavor: FdChannelFlavor) -> Self {
        self.spec = self.spec.fd_channel(flavor);
        self
    }

    /// The probe a new worker runs: the configured one, or for a plain
    /// program, "ready once it runs".
    pub(crate) fn probe(&self) -> Option<crate::Readiness> {
        self.readiness
            .clone()
            .or_else(|| self.spec.plain.then(crate::Readiness::alive))
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

mod affinity;
pub(crate) mod credentials;
mod fd_channel;
mod settings;
mod spec;
#[cfg(test)]
mod tests;

pub(crate) use affinity::Cpus;
pub use credentials::{NameOrId, Rlimit, RLIMIT_UNLIMITED};
pub use fd_channel::FdChannelFlavor;
pub(crate) use settings::{Overrides, Settings};
pub use spec::WorkerSpec;
