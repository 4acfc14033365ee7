//! The checks of [`Config::validate`]: every setting in range, before
//! any process is spawned (the plain-program checks are in `plain.rs`).

use crate::error::ConfigError;

use super::{Builder, Config};

impl Builder {
    /// Checks the configuration as [`spawn`](Self::spawn) does, spawning
    /// nothing and binding nothing: every setting in range, every program
    /// found, every user and group known. A host can check a new
    /// configuration before it changes a running supervisor (`nanny run`
    /// does on SIGHUP). Needs no runtime. A listener's address that is in
    /// use is only found when it is bound.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] for the first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.cfg.validate()
    }
}

/// The smallest [`Builder::max_frame_len`](super::Builder::max_frame_len) accepted.
const MIN_FRAME_LEN: usize = 1024;
/// The largest [`Builder::max_frame_len`](super::Builder::max_frame_len) accepted: the protocol's length
/// prefix is a `u32`.
const MAX_FRAME_LEN: usize = u32::MAX as usize;

impl Config {
    /// The first setting that is out of range, if any. Spawns nothing.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.pools.is_empty() {
            return Err(E::NoPools);
        }
        if let Some(queue) = &self.queue {
            queue.validate()?;
        }
        for (i, p) in self.pools.iter().enumerate() {
            let pool = || p.name.clone();
            if p.name.is_empty() {
                return Err(E::EmptyPoolName);
            }
            if self.pools[..i].iter().any(|q| q.name == p.name) {
                return Err(E::DuplicatePool { pool: pool() });
            }
            if p.workers == 0 && self.queue.is_none() {
                return Err(E::ZeroWorkers { pool: pool() });
            }
            if p.workers > crate::Pool::MAX_WORKERS {
                return Err(E::TooManyWorkers {
                    pool: pool(),
                    workers: p.workers,
                    max: crate::Pool::MAX_WORKERS,
                });
            }
            if p.concurrency == 0 {
                return Err(E::ZeroConcurrency { pool: pool() });
            }
            check_spec(&p.name, &p.spec)?;
            if let Some(ids) = &p.logical_ids {
                if ids.len() != p.workers {
                    return Err(E::LogicalIds {
                        pool: pool(),
                        ids: ids.len(),
                        workers: p.workers,
                    });
                }
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                    return Err(E::DuplicateLogicalId {
                        pool: pool(),
                        id: w[0],
                    });
                }
            }
            if p.max_requests == Some(0) {
                return Err(E::ZeroMaxRequests { pool: pool() });
            }
            if p.max_request_duration.is_some_and(|d| d.is_zero()) {
                return Err(E::ZeroMaxRequestDuration { pool: pool() });
            }
        }
        if self.max_queue == 0 {
            return Err(E::ZeroMaxQueue);
        }
        if self.pulse.is_zero() {
            return Err(E::ZeroPulse);
        }
        if self.max_frame_len < MIN_FRAME_LEN {
            return Err(E::FrameTooSmall {
                max_frame_len: self.max_frame_len,
                min: MIN_FRAME_LEN,
            });
        }
        if self.max_frame_len > MAX_FRAME_LEN {
            return Err(E::FrameTooLarge {
                max_frame_len: self.max_frame_len,
                max: MAX_FRAME_LEN,
            });
        }
        if self.event_capacity == 0 {
            return Err(E::ZeroEventCapacity);
        }
        // The builder's values first, unwrapped: once they pass, a pool's
        // failure is its own override's.
        self.defaults.check(self.pulse)?;
        for p in &self.pools {
            (self.defaults.with(&p.settings).check(self.pulse)).map_err(|error| E::PoolSetting {
                pool: p.name.clone(),
                error: Box::new(error),
            })?;
        }
        if self.request_timeout.is_some_and(|t| t.is_zero()) {
            return Err(E::ZeroRequestTimeout);
        }
        self.validate_listeners()
    }

    fn validate_listeners(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.server_restart_delay.is_zero() {
            return Err(E::ZeroServerRestartDelay);
        }
        for (i, l) in self.listeners.iter().enumerate() {
            let listener = l.display_name();
            if let Some(pool) = &l.pool {
                if !self.pools.iter().any(|p| &p.name == pool) {
                    return Err(E::ListenerPool {
                        listener,
                        pool: pool.clone(),
                    });
                }
            }
            if self.listeners[..i].iter().any(|k| k.display_name() == listener) {
                return Err(E::DuplicateListener { listener });
            }
            if l.backlog == 0 {
                return Err(E::ZeroBacklog { listener });
            }
            if l.sticky_by_peer_ip {
                let reason = match (&l.addr, l.distribution) {
                    (crate::ListenAddr::Unix(_), _) => Some("a Unix socket has no peer IP"),
                    (_, crate::Distribution::SocketActivation) => Some("socket activation: the kernel picks"),
                    _ => None,
                };
                if let Some(reason) = reason {
                    return Err(E::StickyListener { listener, reason });
                }
            }
        }
        if let Some(window) = self.spin {
            if window < std::time::Duration::from_micros(1) || window > super::latency::MAX_SPIN_WINDOW {
                return Err(ConfigError::SpinWindow { window });
            }
        }
        self.validate_plain()?;
        self.validate_placement()?;
        self.validate_asks()
    }
}

/// The checks of a pool's worker spec (at start, and so at `update_pool`).
fn check_spec(pool: &str, spec: &crate::WorkerSpec) -> Result<(), ConfigError> {
    if spec.program.as_os_str().is_empty() {
        return Err(ConfigError::EmptyProgram {
            pool: pool.to_owned(),
        });
    }
    if !executable_exists(&spec.program) {
        return Err(ConfigError::ProgramNotFound {
            pool: pool.to_owned(),
            program: spec.program.clone(),
        });
    }
    spec.run_as.resolve(pool).map(drop)
}

/// Whether `program` names an executable file: a path as is, a bare
/// name looked up in `PATH` as `exec` would.
fn executable_exists(program: &std::path::Path) -> bool {
    crate::worker::spawn::find_program(program, std::env::var_os("PATH").as_deref()).is_some()
}
