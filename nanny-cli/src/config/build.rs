//! From the parsed file to a [`nanny::Builder`]: the library's setters,
//! called with the file's values; what the file leaves out keeps the
//! library's default (but `drain_timeout`, 30 s under `nanny run`).

use std::path::Path;
use std::time::Duration;

use nanny::{Backoff, Builder, Listener, Pool, Readiness, RedisQueue, Retries, WorkerSpec};

use super::schema::{
    File, ListenerConfig, PoolConfig, QueueConfig, ReadinessConfig, RetriesConfig, Settings,
    SupervisorConfig, Unlimited,
};
use super::units::Span;
use super::Problem;

/// `nanny run`'s `drain_timeout` when the file sets none (DESIGN.md:
/// gunicorn's `graceful_timeout`); the library's own default is no bound.
pub(crate) const RUN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The builder the file describes; `dir` is the file's directory, against
/// which relative paths are resolved. A problem found here names the byte
/// range of the table it is in.
/// Also returns each pool's name and worker spec, and each pool, in order
/// (what a reload compares and applies).
pub(crate) fn builder(file: File, dir: &Path) -> Result<Built, Problem> {
    file.supervisor
        .settings()
        .check()
        .map_err(|m| Problem::whole(format!("[supervisor]: {m}")))?;
    let mut b = supervisor(Builder::default(), &file.supervisor);
    if let Some(path) = &file.supervisor.init_program {
        b = b.init_program(dir.join(path));
    }
    if let Some(q) = &file.queue {
        let place = |m| Problem::at(q.span(), format!("[queue]: {m}"));
        b = b.queue(queue(q.get_ref(), dir, |name| std::env::var(name).ok()).map_err(place)?);
    }
    let mut specs = Vec::with_capacity(file.pool.len());
    let mut pools = Vec::with_capacity(file.pool.len());
    for pool in file.pool {
        let span = pool.span();
        let p = pool.into_inner();
        let at = |message| Problem::at(span.clone(), message);
        let spec = spec(&p, dir).map_err(at)?;
        let name = p.name.clone().unwrap_or_else(|| nanny::DEFAULT_POOL.to_owned());
        specs.push((name.clone(), spec.clone()));
        let pool = self::pool(p, spec).map_err(at)?;
        pools.push((name, pool.clone()));
        b = b.pool(pool);
    }
    for listener in file.listener {
        let span = listener.span();
        b = b.listen(
            self::listener(listener.into_inner(), dir).map_err(|message| Problem::at(span, message))?,
        );
    }
    Ok((b, specs, pools))
}

/// What [`builder`] makes: the builder, each pool's name and spec, each
/// pool's name and definition.
pub(crate) type Built = (Builder, Vec<(String, WorkerSpec)>, Vec<(String, Pool)>);

/// The shared queue `[queue]` describes; `env` looks up `url_env`,
/// `tls_ca_file` is read from `dir`. The library checks the values
/// themselves when the supervisor starts (`ConfigError::SharedQueue`).
pub(crate) fn queue(
    q: &QueueConfig,
    dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<RedisQueue, String> {
    let url = match (&q.url, &q.url_env) {
        (Some(url), None) => url.clone(),
        (None, Some(name)) => env(name).ok_or_else(|| format!("url_env names {name}, which is not set"))?,
        (Some(_), Some(_)) => return Err("url and url_env are both set; give one".to_owned()),
        (None, None) => return Err("url or url_env is required".to_owned()),
    };
    let mut r = RedisQueue::new(url, q.namespace.clone());
    if let Some(host) = &q.host {
        r = r.host(host.clone());
    }
    let set = |r: RedisQueue, value: Option<Span>, f: fn(RedisQueue, Duration) -> RedisQueue| match value {
        Some(span) => f(r, span.0),
        None => r,
    };
    r = set(r, q.heartbeat, RedisQueue::heartbeat);
    r = set(r, q.min_idle, RedisQueue::min_idle);
    r = set(r, q.janitor, RedisQueue::janitor);
    r = set(r, q.block, RedisQueue::block);
    r = set(r, q.reply_ttl, RedisQueue::reply_ttl);
    if let Some(bytes) = q.min_available_memory {
        r = r.min_available_memory(bytes.0);
    }
    if let Some(file) = &q.tls_ca_file {
        let path = dir.join(file);
        let pem = std::fs::read(&path).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
        r = r.tls_root_certificate(pem);
    }
    Ok(r)
}

fn supervisor(mut b: Builder, s: &SupervisorConfig) -> Builder {
    if let Some(v) = s.pulse {
        b = b.pulse(v.0);
    }
    if let Some(v) = s.max_queue {
        b = b.max_queue(v);
    }
    if let Some(v) = s.request_timeout {
        b = b.request_timeout(v.0);
    }
    if let Some(v) = s.retries {
        b = b.retries(match v {
            RetriesConfig::Limited(n) => Retries::Limited(n),
            RetriesConfig::Word(Unlimited::Unlimited) => Retries::Unlimited,
        });
    }
    if let Some(v) = s.max_frame_len {
        b = b.max_frame_len(usize::try_from(v.0).unwrap_or(usize::MAX));
    }
    if let Some(v) = s.health_events {
        b = b.health_events(v);
    }
    if let Some(v) = s.event_capacity {
        b = b.event_capacity(v);
    }
    if let Some(v) = s.server_restart_delay {
        b = b.server_restart_delay(v.0);
    }
    if let Some(v) = &s.process_title {
        b = b.process_title(v);
    }
    if let Some(v) = s.allow_worker_shutdown {
        b = b.allow_worker_shutdown(v);
    }
    if let Some(v) = s.contain_descendants {
        b = b.contain_descendants(v);
    }
    let mut settings = s.settings();
    settings
        .drain_timeout
        .get_or_insert(super::units::OptSpan(Some(RUN_DRAIN_TIMEOUT)));
    settings.apply(b)
}

fn pool(p: PoolConfig, spec: WorkerSpec) -> Result<Pool, String> {
    let name = p.name.clone().unwrap_or_else(|| nanny::DEFAULT_POOL.to_owned());
    p.settings().check().map_err(|m| format!("pool {name:?}: {m}"))?;
    let mut pool = Pool::new(&name, spec);
    if let Some(ids) = p.logical_ids.clone() {
        pool = pool.logical_ids(ids);
    }
    if let Some(n) = p.workers {
        pool = pool.workers(n);
    }
    if let Some(n) = p.concurrency {
        pool = pool.concurrency(n);
    }
    // Every pool is captured; the file's `silent` says where its lines go
    // (a file or nanny's stderr: see `crate::logs`).
    pool = pool.silent(true);
    if let Some(policy) = p.restart {
        pool = pool.restart(policy);
    }
    if p.respawn_count.is_some() {
        pool = pool.respawn_count(p.respawn_count);
    }
    match (p.max_requests, p.max_requests_jitter) {
        (Some(n), jitter) => pool = pool.max_requests(n, jitter.unwrap_or(0)),
        (None, Some(_)) => return Err(format!("pool {name:?}: max_requests_jitter needs max_requests")),
        (None, None) => {}
    }
    if let Some(d) = p.max_request_duration {
        pool = pool.max_request_duration(d.0);
    }
    if let Some(cpus) = p.cpu_affinity.clone() {
        pool = pool.cpu_affinity(cpus);
    }
    if let Some(cpus) = p.cpu_per_worker.clone() {
        pool = pool.cpu_per_worker(cpus);
    }
    if let Some(r) = p.readiness.clone() {
        pool = pool.readiness(readiness(r));
    }
    pool = pool.allow_kill(p.allow_kill);
    if let Some(max) = p.allow_spawn {
        pool = pool.allow_spawn(max);
    }
    if !p.allow_spawn_args.is_empty() {
        pool = pool.allow_spawn_args(p.allow_spawn_args.clone());
    }
    Ok(p.settings().apply(pool))
}

fn spec(p: &PoolConfig, dir: &Path) -> Result<WorkerSpec, String> {
    let name = p.name.as_deref().unwrap_or(nanny::DEFAULT_POOL);
    let command = Path::new(&p.command);
    let program = if command.is_relative() && p.command.contains('/') {
        dir.join(command)
    } else {
        command.to_path_buf()
    };
    let mut spec = WorkerSpec::new(program).args(&p.args);
    if let Some(cwd) = &p.cwd {
        spec = spec.cwd(dir.join(cwd));
    }
    if let Some(file) = &p.env_file {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("pool {name:?}: env_file {}: {e}", path.display()))?;
        let vars = super::env_file::parse(&text).map_err(|e| {
            format!(
                "pool {name:?}: env_file {}:{}: {}",
                path.display(),
                e.line,
                e.message
            )
        })?;
        for (k, v) in vars {
            spec = spec.env(k, v);
        }
    }
    for (k, v) in &p.env {
        spec = spec.env(k, v);
    }
    if let Some(user) = &p.user {
        spec = spec.user(user);
    }
    if let Some(group) = &p.group {
        spec = spec.group(group);
    }
    for (resource, soft, hard) in p.rlimits.entries() {
        spec = spec.rlimit(resource, soft, hard);
    }
    if let Some(flavor) = p.fd_channel {
        spec = spec.fd_channel(flavor);
    }
    Ok(if p.plain { spec.plain() } else { spec })
}

fn readiness(r: ReadinessConfig) -> Readiness {
    match r {
        ReadinessConfig::Tcp(addr) => Readiness::tcp(addr),
        ReadinessConfig::Http { addr, path } => Readiness::http(addr, path),
        ReadinessConfig::Delay(d) => Readiness::delay(d.0),
    }
}

fn listener(l: ListenerConfig, dir: &Path) -> Result<Listener, String> {
    let mut listener = match (l.tcp, &l.unix) {
        (Some(addr), None) => Listener::tcp(addr),
        (None, Some(path)) => Listener::unix(dir.join(path)),
        _ => return Err("a listener needs exactly one of `tcp` (an address) and `unix` (a path)".to_owned()),
    };
    if let Some(pool) = l.pool {
        listener = listener.pool(pool);
    }
    if let Some(name) = l.name {
        listener = listener.name(name);
    }
    if let Some(n) = l.backlog {
        listener = listener.backlog(n);
    }
    if let Some(n) = l.listen_backlog {
        listener = listener.listen_backlog(n);
    }
    if l.socket_activation {
        listener = listener.socket_activation();
    }
    if l.sticky_by_peer_ip {
        listener = listener.sticky_by_peer_ip();
    }
    Ok(listener)
}

/// The builder and the pool have the same per-pool setters.
trait PoolSettings: Sized {
    fn start_timeout(self, v: Duration) -> Self;
    fn drain_timeout(self, v: Option<Duration>) -> Self;
    fn force_stop_delay(self, v: Option<Duration>) -> Self;
    fn restart_delay(self, v: Duration) -> Self;
    fn restart_backoff(self, v: Backoff) -> Self;
    fn max_restarts(self, v: u32) -> Self;
    fn restart_window(self, v: Duration) -> Self;
    fn unhealthy_timeout(self, v: Option<Duration>) -> Self;
    fn reload_delay(self, v: Duration) -> Self;
    fn max_rss(self, bytes: u64) -> Self;
}

macro_rules! pool_settings {
    ($t:ty) => {
        impl PoolSettings for $t {
            fn start_timeout(self, v: Duration) -> Self {
                <$t>::start_timeout(self, v)
            }
            fn drain_timeout(self, v: Option<Duration>) -> Self {
                <$t>::drain_timeout(self, v)
            }
            fn force_stop_delay(self, v: Option<Duration>) -> Self {
                <$t>::force_stop_delay(self, v)
            }
            fn restart_delay(self, v: Duration) -> Self {
                <$t>::restart_delay(self, v)
            }
            fn restart_backoff(self, v: Backoff) -> Self {
                <$t>::restart_backoff(self, v)
            }
            fn max_restarts(self, v: u32) -> Self {
                <$t>::max_restarts(self, v)
            }
            fn restart_window(self, v: Duration) -> Self {
                <$t>::restart_window(self, v)
            }
            fn unhealthy_timeout(self, v: Option<Duration>) -> Self {
                <$t>::unhealthy_timeout(self, v)
            }
            fn reload_delay(self, v: Duration) -> Self {
                <$t>::reload_delay(self, v)
            }
            fn max_rss(self, bytes: u64) -> Self {
                <$t>::is_healthy(self, move |h: &nanny::WorkerHealth| h.rss_bytes < bytes)
            }
        }
    };
}

pool_settings!(Builder);
pool_settings!(Pool);

impl Settings {
    /// Settings that exclude each other.
    fn check(&self) -> Result<(), String> {
        if self.restart_delay.is_some() && self.restart_backoff.is_some() {
            return Err("restart_delay and restart_backoff exclude each other (restart_backoff's initial delay is the first one)".to_owned());
        }
        Ok(())
    }

    /// Calls the setter of every setting given.
    fn apply<T: PoolSettings>(self, mut t: T) -> T {
        if let Some(v) = self.start_timeout {
            t = t.start_timeout(v.0);
        }
        if let Some(v) = self.drain_timeout {
            t = t.drain_timeout(v.0);
        }
        if let Some(v) = self.force_stop_delay {
            t = t.force_stop_delay(v.0);
        }
        if let Some(v) = self.restart_backoff {
            t = t.restart_backoff(Backoff::exponential(v.0));
        }
        if let Some(v) = self.restart_delay {
            t = t.restart_delay(v.0);
        }
        if let Some(v) = self.max_restarts {
            t = t.max_restarts(v);
        }
        if let Some(v) = self.restart_window {
            t = t.restart_window(v.0);
        }
        if let Some(v) = self.unhealthy_timeout {
            t = t.unhealthy_timeout(v.0);
        }
        if let Some(v) = self.reload_delay {
            t = t.reload_delay(v.0);
        }
        if let Some(v) = self.max_rss {
            t = t.max_rss(v.0);
        }
        t
    }
}
