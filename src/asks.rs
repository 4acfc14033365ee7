//! What workers may ask of the supervisor (protocol version 4): answers
//! from the supervisor's handlers, kills of other members, new workers,
//! their own restart; and the arguments that bubble down to workers.
//!
//! * **Questions with an answer** (load-process-manager's
//!   `worker.emit(event, payload, callback)` / `req.respond`): a worker's
//!   `ask(event, &payload)` runs the handler registered with
//!   [`Builder::on_ask`](crate::Builder::on_ask) for `event`, off the
//!   supervisor task, and the worker gets what it returns. No handler: the
//!   worker gets `AskError::NoHandler`; a failing or panicking one:
//!   `AskError::HandlerFailed`. A worker has at most [`MAX_ASKS_IN_FLIGHT`]
//!   questions running on the supervisor; past that a question is refused
//!   at once (`AskError::Busy`), nothing queues. Handlers still running at
//!   shutdown are cut off when the supervisor's tasks end.
//! * **Kills** (clustr-node's `emitKill`): a worker of a pool with
//!   [`Pool::allow_kill`] may stop any cluster member, named by pid, id
//!   or name, with an exit code: the target is sent `Exit { code }`, runs
//!   its soft-kill work and exits with `code` (SIGKILL after its
//!   `force_stop_delay`), and its pool's restart policy judges that code
//!   (`OnFailure`: 0 stays down, 3 is restarted). A pid that is no member
//!   is refused (`NotAMember`): nothing is ever signalled outside the
//!   cluster. The supervisor's own pid means a soft kill of the whole
//!   cluster, only with [`Builder::allow_worker_shutdown`](crate::Builder::allow_worker_shutdown).
//! * **Spawns** (clustr-node's `spawn`): any worker may add workers to a
//!   pool with [`Pool::allow_spawn`], up to that pool's limit of running
//!   workers; the answer lists the new workers once they are ready.
//! * **Restarts** (project-cluster's `restartme`): any worker may ask for
//!   its own make-before-break restart (`Supervisor::restart_worker` on
//!   itself).
//! * **Arguments that bubble down** (clustr-node's `--cluster-…`):
//!   [`Pool::forward_args`] appends the supervisor's arguments that start
//!   with a prefix to every worker of the pool (also those a worker asked
//!   for).

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::health::WorkerId;
use crate::pool::Pool;

/// Questions one worker may have running on the supervisor at once; one
/// more is answered `busy` at once.
pub const MAX_ASKS_IN_FLIGHT: usize = 64;

/// One worker's question for a handler registered with
/// [`Builder::on_ask`](crate::Builder::on_ask).
#[derive(Clone)]
pub struct AskRequest {
    pub(crate) worker: WorkerId,
    pub(crate) name: String,
    pub(crate) pool: String,
    pub(crate) pid: u32,
    pub(crate) event: String,
    pub(crate) payload: Vec<u8>,
}

impl AskRequest {
    /// The asking worker.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The asking worker's name (`pool:NN`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The asking worker's pool.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The asking worker's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The event name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The payload, decoded into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        nanny_worker::protocol::decode_payload(&self.payload).map_err(|e| Error::Decode(e.to_string()))
    }

    /// The payload's MessagePack bytes.
    pub fn raw(&self) -> &[u8] {
        &self.payload
    }
}

impl fmt::Debug for AskRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskRequest")
            .field("worker", &self.worker)
            .field("name", &self.name)
            .field("event", &self.event)
            .field("len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// A handler, its types erased: the answer's MessagePack, or the error's text.
pub(crate) type AskHandler =
    Arc<dyn Fn(AskRequest) -> BoxFuture<'static, Result<Vec<u8>, String>> + Send + Sync>;

/// Erases a handler's types.
pub(crate) fn erase<F, Fut, R, E>(handler: F) -> AskHandler
where
    F: Fn(AskRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Serialize,
    E: fmt::Display,
{
    Arc::new(move |ask| {
        handler(ask)
            .map(|answer| match answer {
                Ok(value) => nanny_worker::protocol::encode_payload(&value).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            })
            .boxed()
    })
}

/// The supervisor-wide part: handlers, shutdown permission, the arguments
/// [`Pool::forward_args`] filters.
#[derive(Clone, Default)]
pub(crate) struct AskConfig {
    pub(crate) handlers: Vec<(String, AskHandler)>,
    pub(crate) allow_shutdown: bool,
    /// `None`: this process's arguments (without `argv[0]`).
    pub(crate) cluster_args: Option<Vec<OsString>>,
}

impl AskConfig {
    pub(crate) fn handler(&self, event: &str) -> Option<AskHandler> {
        (self.handlers.iter())
            .find(|(name, _)| name == event)
            .map(|(_, h)| Arc::clone(h))
    }

    /// The supervisor's arguments that start with `prefix`.
    pub(crate) fn forwarded(&self, prefix: &str) -> Vec<OsString> {
        let own = || std::env::args_os().skip(1).collect::<Vec<_>>();
        let args = self.cluster_args.clone().unwrap_or_else(own);
        (args.into_iter())
            .filter(|a| a.to_str().is_some_and(|a| a.starts_with(prefix)))
            .collect()
    }
}

impl fmt::Debug for AskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let events: Vec<&str> = self.handlers.iter().map(|(e, _)| e.as_str()).collect();
        f.debug_struct("AskConfig")
            .field("handlers", &events)
            .field("allow_shutdown", &self.allow_shutdown)
            .field("cluster_args", &self.cluster_args)
            .finish()
    }
}

/// A pool's part: what its workers may do, and the arguments it forwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolAsks {
    pub(crate) allow_kill: bool,
    /// Workers may add workers to this pool up to this many running.
    pub(crate) spawn_limit: Option<usize>,
    /// The prefixes a spawn's own arguments may start with.
    pub(crate) spawn_args: Vec<String>,
    pub(crate) forward_prefix: Option<String>,
    /// The supervisor's arguments with that prefix, resolved at start.
    pub(crate) forwarded: Vec<OsString>,
}

impl Pool {
    /// Lets the workers of this pool stop other cluster members with an
    /// exit code (clustr-node's `emitKill`; the SDK's `Worker::kill`).
    /// Default: refused (`AskError::Refused`). The asking worker's pool is
    /// the one whose permission counts.
    pub fn allow_kill(mut self, allow: bool) -> Self {
        self.asks.allow_kill = allow;
        self
    }

    /// Lets workers (of any pool) add workers to this pool (the SDK's
    /// `Worker::spawn_workers`), as long as it then runs at most
    /// `max_workers` (at least [`workers`](Self::workers)). The new slots
    /// are ordinary ones (a resize or `remove_worker` removes them). Default:
    /// refused (`AskError::Refused`).
    pub fn allow_spawn(mut self, max_workers: usize) -> Self {
        self.asks.spawn_limit = Some(max_workers);
        self
    }

    /// Lets a spawn into this pool ([`allow_spawn`](Self::allow_spawn))
    /// pass its own arguments to the new workers (after the spec's and the
    /// forwarded ones), each starting with one of `prefixes` (e.g.
    /// `["--shard="]`); any other argument refuses the spawn
    /// (`AskError::Refused`). Default: none allowed. A slot keeps its
    /// arguments across its workers.
    pub fn allow_spawn_args<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.asks.spawn_args = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Appends the supervisor's own arguments that start with `prefix`
    /// (clustr-node's `--cluster-…`, e.g. `--cluster-verbose`) to the
    /// arguments of every worker of this pool, after the spec's own; the
    /// arguments are this process's (without `argv[0]`) unless
    /// [`Builder::cluster_args`](crate::Builder::cluster_args) names
    /// others. Write an option and its value as one argument
    /// (`--cluster-level=debug`): only arguments that carry the prefix go.
    pub fn forward_args(mut self, prefix: impl Into<String>) -> Self {
        self.asks.forward_prefix = Some(prefix.into());
        self
    }
}
