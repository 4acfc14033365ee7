//! [`ConfigError`]: the setting a builder refused, and why.

use std::path::PathBuf;
use std::time::Duration;

mod names;

/// Which setting [`Builder::spawn`](crate::Builder::spawn) /
/// [`Builder::start`](crate::Builder::start) refused, found before any
/// process is spawned (inside [`StartError::Config`](super::StartError::Config)). Pool settings name
/// their pool; the first problem found is the one reported.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No pool was added ([`Builder::pool`](crate::Builder::pool)).
    #[error("no pool configured: add one with Builder::pool")]
    NoPools,
    /// A pool's name is the empty string.
    #[error("a pool name is empty")]
    EmptyPoolName,
    /// Two pools have the same name.
    #[error("two pools are named {pool:?}")]
    DuplicatePool {
        /// The name used twice.
        pool: String,
    },
    /// A pool has zero workers ([`Pool::workers`](crate::Pool::workers), or
    /// an empty [`Pool::logical_ids`](crate::Pool::logical_ids)).
    #[error("pool {pool:?} has zero workers")]
    ZeroWorkers {
        /// The pool.
        pool: String,
    },
    /// A pool has more workers than [`Pool::MAX_WORKERS`](crate::Pool::MAX_WORKERS).
    #[error("pool {pool:?} has {workers} workers, over the maximum of {max}")]
    TooManyWorkers {
        /// The pool.
        pool: String,
        /// The worker count asked for.
        workers: usize,
        /// The most a pool may have.
        max: usize,
    },
    /// A pool's [`concurrency`](crate::Pool::concurrency) is zero.
    #[error("pool {pool:?} has a concurrency of zero")]
    ZeroConcurrency {
        /// The pool.
        pool: String,
    },
    /// A pool's program path is empty.
    #[error("pool {pool:?} has an empty program path")]
    EmptyProgram {
        /// The pool.
        pool: String,
    },
    /// A pool's program is not an executable file (a path as given, or a
    /// bare name looked up in `PATH`).
    #[error("pool {pool:?}: executable {} not found", program.display())]
    ProgramNotFound {
        /// The pool.
        pool: String,
        /// The program as configured.
        program: PathBuf,
    },
    /// A pool's [`logical_ids`](crate::Pool::logical_ids) are not one per
    /// worker ([`workers`](crate::Pool::workers) was given as well).
    #[error("pool {pool:?} has {workers} workers but {ids} logical ids")]
    LogicalIds {
        /// The pool.
        pool: String,
        /// How many logical ids were given.
        ids: usize,
        /// The worker count.
        workers: usize,
    },
    /// A pool lists the same logical id twice.
    #[error("pool {pool:?} has logical id {id} twice")]
    DuplicateLogicalId {
        /// The pool.
        pool: String,
        /// The (smallest) id listed more than once.
        id: u64,
    },
    /// A pool's [`max_requests`](crate::Pool::max_requests) is zero.
    #[error("pool {pool:?}: max_requests must be at least 1")]
    ZeroMaxRequests {
        /// The pool.
        pool: String,
    },
    /// A pool's [`max_request_duration`](crate::Pool::max_request_duration) is zero.
    #[error("pool {pool:?}: max_request_duration must be greater than zero")]
    ZeroMaxRequestDuration {
        /// The pool.
        pool: String,
    },
    /// [`max_queue`](crate::Builder::max_queue) is zero.
    #[error("max_queue must be at least 1")]
    ZeroMaxQueue,
    /// [`pulse`](crate::Builder::pulse) is zero.
    #[error("pulse must be greater than zero")]
    ZeroPulse,
    /// [`start_timeout`](crate::Builder::start_timeout) is zero.
    #[error("start_timeout must be greater than zero")]
    ZeroStartTimeout,
    /// [`max_frame_len`](crate::Builder::max_frame_len) is under the smallest frame bound.
    #[error("max_frame_len of {max_frame_len} bytes is under the minimum of {min}")]
    FrameTooSmall {
        /// The configured bound.
        max_frame_len: usize,
        /// The smallest accepted (1 KiB).
        min: usize,
    },
    /// [`max_frame_len`](crate::Builder::max_frame_len) does not fit the
    /// protocol's 32-bit length prefix.
    #[error("max_frame_len of {max_frame_len} bytes is over the maximum of {max}")]
    FrameTooLarge {
        /// The configured bound.
        max_frame_len: usize,
        /// The largest accepted (`u32::MAX`).
        max: usize,
    },
    /// [`restart_window`](crate::Builder::restart_window) is zero.
    #[error("restart_window must be greater than zero")]
    ZeroRestartWindow,
    /// [`event_capacity`](crate::Builder::event_capacity) is zero.
    #[error("event_capacity must be at least 1")]
    ZeroEventCapacity,
    /// [`unhealthy_timeout`](crate::Builder::unhealthy_timeout) does not
    /// exceed [`pulse`](crate::Builder::pulse), the heartbeat interval, so a
    /// healthy worker would be stopped between two heartbeats.
    #[error(
        "unhealthy_timeout ({unhealthy_timeout:?}) must exceed pulse ({pulse:?}), the heartbeat interval"
    )]
    UnhealthyTimeoutNotAbovePulse {
        /// The configured timeout.
        unhealthy_timeout: Duration,
        /// The configured pulse.
        pulse: Duration,
    },
    /// [`force_stop_delay`](crate::Builder::force_stop_delay) is
    /// `Some(Duration::ZERO)`: use `None` to never force, or a positive delay.
    #[error("force_stop_delay of zero: use None to never force, or a positive delay")]
    ZeroForceStopDelay,
    /// [`drain_timeout`](crate::Builder::drain_timeout) is
    /// `Some(Duration::ZERO)`: use `None` for no bound, or a positive one.
    #[error("drain_timeout of zero: use None for no bound, or a positive timeout")]
    ZeroDrainTimeout,
    /// The [`restart_backoff`](crate::Builder::restart_backoff) multiplier
    /// is under 1 or not finite (NaN included).
    #[error("restart_backoff multiplier {multiplier} must be a finite number of at least 1")]
    BackoffMultiplier {
        /// The configured multiplier.
        multiplier: f64,
    },
    /// The [`restart_backoff`](crate::Builder::restart_backoff) initial delay exceeds its max.
    #[error("restart_backoff initial delay ({initial:?}) exceeds its max ({max:?})")]
    BackoffInitialOverMax {
        /// [`Backoff::initial`](crate::Backoff::initial).
        initial: Duration,
        /// [`Backoff::max`](crate::Backoff::max).
        max: Duration,
    },
    /// A pool's own setting ([`Pool::start_timeout`](crate::Pool::start_timeout)
    /// and friends) is out of range; `error` says which and why.
    #[error("pool {pool:?}: {error}")]
    PoolSetting {
        /// The pool.
        pool: String,
        /// What is wrong with its setting.
        error: Box<ConfigError>,
    },
    /// [`reload_delay`](crate::Builder::reload_delay) is over the maximum.
    #[error("reload_delay ({reload_delay:?}) exceeds the maximum of {max:?}")]
    ReloadDelayTooLong {
        /// The configured delay.
        reload_delay: Duration,
        /// The largest accepted.
        max: Duration,
    },
    /// [`request_timeout`](crate::Builder::request_timeout) is zero.
    #[error("request_timeout must be greater than zero")]
    ZeroRequestTimeout,
    /// A [`Listener`](crate::Listener) names a pool that does not exist.
    #[error("listener {listener:?} names unknown pool {pool:?}")]
    ListenerPool {
        /// The listener's name.
        listener: String,
        /// The pool it names.
        pool: String,
    },
    /// Two listeners have the same name (by default, their address).
    #[error("two listeners are named {listener:?}")]
    DuplicateListener {
        /// The name.
        listener: String,
    },
    /// A listener's [`backlog`](crate::Listener::backlog) is zero.
    #[error("listener {listener:?}: backlog must be at least 1")]
    ZeroBacklog {
        /// The listener's name.
        listener: String,
    },
    /// A socket-activated listener's name holds a `:`, the separator of
    /// `LISTEN_FDNAMES` (give it a [`name`](crate::Listener::name) without one;
    /// an unnamed listener is passed as `unknown`, as systemd does).
    #[error("listener {listener:?}: a socket-activated listener's name may not contain ':'")]
    ListenerNameColon {
        /// The listener's name.
        listener: String,
    },
    /// A round-robin listener names a pool of plain programs, which cannot
    /// take handed-over connections: use
    /// [`Listener::socket_activation`](crate::Listener::socket_activation).
    #[error("listener {listener:?}: pool {pool:?} runs plain programs; only socket activation reaches them")]
    PlainRoundRobin {
        /// The listener's name.
        listener: String,
        /// The pool.
        pool: String,
    },
    /// A pool of plain programs ([`WorkerSpec::plain`](crate::WorkerSpec::plain))
    /// asks for the [Node.js fd channel](crate::FdChannelFlavor::Node):
    /// plain programs get no fd channel at all.
    #[error("pool {pool:?} runs plain programs, which get no fd channel (fd_channel = \"node\")")]
    PlainFdChannel {
        /// The pool.
        pool: String,
    },
    /// A pool's [`Readiness::http`](crate::Readiness::http) path does not
    /// start with `/` or holds whitespace or control characters.
    #[error("pool {pool:?}: readiness path {path:?} must start with '/' and hold no whitespace")]
    ReadinessPath {
        /// The pool.
        pool: String,
        /// The path.
        path: String,
    },
    /// A pool's [`Readiness::delay`](crate::Readiness::delay) is not under
    /// [`start_timeout`](crate::Builder::start_timeout): no worker would
    /// ever be ready.
    #[error("pool {pool:?}: readiness delay {delay:?} is not under start_timeout ({start_timeout:?})")]
    ReadinessDelay {
        /// The pool.
        pool: String,
        /// The delay.
        delay: Duration,
        /// The start timeout.
        start_timeout: Duration,
    },
    /// [`server_restart_delay`](crate::Builder::server_restart_delay) is zero.
    #[error("server_restart_delay must be greater than zero")]
    ZeroServerRestartDelay,
    /// [`Builder::spawn`](crate::Builder::spawn) was called outside a tokio runtime.
    #[error("a supervisor must be started inside a tokio runtime")]
    NotInRuntime,
    /// A setting of the shared queue ([`crate::RedisQueue`]) is refused: a
    /// URL that does not parse or has an unsupported scheme, an empty
    /// namespace, `min_idle` under three heartbeats… The text never holds
    /// the URL.
    #[error("shared queue: {0}")]
    SharedQueue(String),
    /// [`Builder::spin_before_park`](crate::Builder::spin_before_park)'s
    /// window is 0 or above
    /// [`MAX_SPIN_WINDOW`](crate::MAX_SPIN_WINDOW).
    #[error("spin_before_park: the window {window:?} is not between 1 µs and 1 s")]
    SpinWindow {
        /// The window given.
        window: std::time::Duration,
    },
    /// [`process_title`](crate::Builder::process_title) is empty, longer
    /// than 64 bytes, or holds a NUL or a line break.
    #[error("process_title {title:?}: {reason}")]
    ProcessTitle {
        /// The configured base.
        title: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A pool's [`cpu_affinity`](crate::Pool::cpu_affinity) or
    /// [`cpu_per_worker`](crate::Pool::cpu_per_worker) names a CPU the
    /// supervisor may not run on (absent, offline, or outside its own
    /// affinity mask or cgroup's cpuset).
    #[error("pool {pool:?}: cpu {cpu} is not one this process may use (available: {available:?})")]
    CpuAffinity {
        /// The pool.
        pool: String,
        /// The first CPU out of range.
        cpu: usize,
        /// The CPUs the supervisor may run on.
        available: Vec<usize>,
    },
    /// A pool's CPU set is empty.
    #[error("pool {pool:?}: the cpu affinity set is empty")]
    EmptyCpuAffinity {
        /// The pool.
        pool: String,
    },
    /// A pool has both [`cpu_affinity`](crate::Pool::cpu_affinity) and
    /// [`cpu_per_worker`](crate::Pool::cpu_per_worker).
    #[error("pool {pool:?}: cpu_affinity and cpu_per_worker exclude each other")]
    CpuAffinityConflict {
        /// The pool.
        pool: String,
    },
    /// CPU affinity was asked for where the supervisor cannot read or set
    /// it (no `sched_getaffinity(2)`).
    #[error("pool {pool:?}: cpu affinity is not supported here: {reason}")]
    CpuAffinityUnsupported {
        /// The pool.
        pool: String,
        /// Why.
        reason: String,
    },
    /// A listener has [`sticky_by_peer_ip`](crate::Listener::sticky_by_peer_ip)
    /// but its connections have no peer IP to go by (a Unix socket), or the
    /// supervisor does not pick their workers (socket activation).
    #[error("listener {listener:?}: sticky_by_peer_ip needs a TCP round-robin listener ({reason})")]
    StickyListener {
        /// The listener's name.
        listener: String,
        /// Why not: `"a Unix socket has no peer IP"` or `"socket activation: the kernel picks"`.
        reason: &'static str,
    },
    /// [`Pool::allow_spawn`](crate::Pool::allow_spawn)'s limit is below
    /// the pool's own [`workers`](crate::Pool::workers).
    #[error("pool {pool:?}: allow_spawn's max_workers ({max_workers}) is below its {workers} workers")]
    SpawnLimitBelowWorkers {
        /// The pool.
        pool: String,
        /// The configured limit.
        max_workers: usize,
        /// The pool's workers.
        workers: usize,
    },
    /// [`Pool::forward_args`](crate::Pool::forward_args) has an empty
    /// prefix (it would forward every argument).
    #[error("pool {pool:?}: forward_args needs a non-empty prefix")]
    EmptyForwardPrefix {
        /// The pool.
        pool: String,
    },
    /// A pool's [`user`](crate::Pool::user) has no entry in the user
    /// database.
    #[error("pool {pool:?}: unknown user {user}")]
    UnknownUser {
        /// The pool.
        pool: String,
        /// The user as configured.
        user: crate::NameOrId,
    },
    /// A pool's [`group`](crate::Pool::group) name has no entry in the
    /// group database.
    #[error("pool {pool:?}: unknown group {group}")]
    UnknownGroup {
        /// The pool.
        pool: String,
        /// The group as configured.
        group: crate::NameOrId,
    },
    /// A pool's [`rlimit`](crate::Pool::rlimit) has a soft limit over its
    /// hard one.
    #[error("pool {pool:?}: rlimit {resource}: soft limit {soft} is over the hard limit {hard}")]
    RlimitSoftOverHard {
        /// The pool.
        pool: String,
        /// The resource.
        resource: crate::Rlimit,
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
    /// [`Supervisor::update_pool_config`](crate::Supervisor::update_pool_config)
    /// or [`update_pool`](crate::Supervisor::update_pool) would change what
    /// a running pool cannot change (`key`: `plain`, `logical_ids`); it
    /// needs a new supervisor.
    #[error("pool {pool:?}: {key} cannot change on a running pool")]
    NotLive {
        /// The pool.
        pool: String,
        /// What would change, by its name in the configuration.
        key: &'static str,
    },
    /// [`Builder::on_ask`](crate::Builder::on_ask) was given an empty
    /// event name, or one that already has a handler.
    #[error("on_ask: event {event:?} is empty or has a handler already")]
    AskHandler {
        /// The event.
        event: String,
    },
}
