//! The supervisor-wide settings of workers' questions (see [`crate::asks`]):
//! handlers, the cluster-shutdown permission, the arguments pools forward.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;

use serde::Serialize;

use super::{Builder, Config};
use crate::asks::AskRequest;
use crate::error::ConfigError;

impl Builder {
    /// Answers the workers' `ask(event, &payload)` for `event` with
    /// `handler` (load-process-manager's `on(event)` with `req.respond`):
    /// its `Ok` value, MessagePack-encoded, is the worker's answer; its
    /// `Err` reaches the worker as `AskError::HandlerFailed` with the
    /// error's text, as does a panic. A question with no handler gets
    /// `AskError::NoHandler`. One handler per event
    /// ([`ConfigError::AskHandler`] otherwise).
    ///
    /// The handler runs on a task of its own, never on the supervisor's,
    /// so it may await anything, including calls on the [`Supervisor`](crate::Supervisor)
    /// (e.g. through a `OnceLock<Supervisor>` set once started); it is cut
    /// off at shutdown.
    /// Each worker has at most [`MAX_ASKS_IN_FLIGHT`](crate::asks::MAX_ASKS_IN_FLIGHT)
    /// questions running.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use nanny::{Pool, Supervisor, WorkerSpec};
    ///
    /// let supervisor = Supervisor::builder()
    ///     .pool(Pool::default_pool(WorkerSpec::new("./my-worker")))
    ///     .on_ask("quota", |ask| async move {
    ///         let pool: String = ask.data()?;
    ///         Ok::<_, nanny::Error>(if pool == "images" { 100u64 } else { 10 })
    ///     })
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_ask<F, Fut, R, E>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(AskRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Serialize,
        E: fmt::Display,
    {
        let handler = crate::asks::erase(handler);
        self.cfg.asks.handlers.push((event.into(), handler));
        self
    }

    /// Lets a worker of a pool with [`Pool::allow_kill`](crate::Pool::allow_kill)
    /// stop the whole cluster (a soft kill) by aiming its kill at the
    /// supervisor's pid, as clustr-node's `emitKill(masterPid)`. Default:
    /// refused.
    pub fn allow_worker_shutdown(mut self, allow: bool) -> Self {
        self.cfg.asks.allow_shutdown = allow;
        self
    }

    /// The arguments [`Pool::forward_args`](crate::Pool::forward_args)
    /// picks from (default: this process's own, without `argv[0]`): for a
    /// host that parses its command line itself, or tests.
    pub fn cluster_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.cfg.asks.cluster_args = Some(args.into_iter().map(Into::into).collect());
        self
    }
}

impl Config {
    /// The checks of the questions' settings.
    pub(super) fn validate_asks(&self) -> Result<(), ConfigError> {
        let handlers = &self.asks.handlers;
        for (i, (event, _)) in handlers.iter().enumerate() {
            if event.is_empty() || handlers[..i].iter().any(|(e, _)| e == event) {
                return Err(ConfigError::AskHandler { event: event.clone() });
            }
        }
        for p in &self.pools {
            let pool = || p.name.clone();
            if let Some(max) = p.asks.spawn_limit.filter(|&max| max < p.workers) {
                return Err(ConfigError::SpawnLimitBelowWorkers {
                    pool: pool(),
                    max_workers: max,
                    workers: p.workers,
                });
            }
            if p.asks.forward_prefix.as_deref() == Some("") {
                return Err(ConfigError::EmptyForwardPrefix { pool: pool() });
            }
        }
        Ok(())
    }

    /// Resolves every pool's forwarded arguments, once, at start.
    pub(crate) fn resolve_forwarding(&mut self) {
        for p in &mut self.pools {
            if let Some(prefix) = &p.asks.forward_prefix {
                p.asks.forwarded = self.asks.forwarded(prefix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError as E, Pool, Supervisor, WorkerSpec};

    fn pool() -> Pool {
        Pool::new("p", WorkerSpec::new("/bin/sh")).workers(2)
    }

    fn check(b: super::Builder) -> Result<(), E> {
        b.cfg.validate()
    }

    #[test]
    fn questions_settings_are_checked() {
        let ok = || async { Ok::<_, String>(()) };
        assert!(check(Supervisor::builder().pool(pool().allow_spawn(2))).is_ok());
        assert!(matches!(
            check(Supervisor::builder().pool(pool().allow_spawn(1))),
            Err(E::SpawnLimitBelowWorkers {
                max_workers: 1,
                workers: 2,
                ..
            })
        ));
        assert!(matches!(
            check(Supervisor::builder().pool(pool().forward_args(""))),
            Err(E::EmptyForwardPrefix { .. })
        ));
        let twice = Supervisor::builder()
            .pool(pool())
            .on_ask("e", move |_| ok())
            .on_ask("e", move |_| ok());
        assert!(matches!(check(twice), Err(E::AskHandler { event }) if event == "e"));
        let empty = Supervisor::builder().pool(pool()).on_ask("", move |_| ok());
        assert!(matches!(check(empty), Err(E::AskHandler { .. })));
    }

    #[test]
    fn forwarded_arguments_are_those_with_the_prefix() {
        let b = Supervisor::builder()
            .pool(pool().forward_args("--cluster-"))
            .cluster_args(["--verbose", "--cluster-verbose", "x--cluster-no"]);
        let mut cfg = b.cfg;
        cfg.resolve_forwarding();
        assert_eq!(cfg.pools[0].asks.forwarded, ["--cluster-verbose"]);
    }
}
