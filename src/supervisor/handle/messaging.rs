//! The messaging half of the [`Supervisor`] handle: per-worker counters.

use super::super::command::Command;
use super::Supervisor;
use crate::error::Error;
use crate::WorkerRef;

impl Supervisor {
    /// Sets a worker's counters ([`WorkerHealth::counters`](crate::WorkerHealth::counters):
    /// messages sent and received, confirmations, drops, kills, spawns,
    /// respawns) back to zero (project-cluster's `reset`). Running workers
    /// only: [`Error::UnknownWorker`] for no such worker,
    /// [`Error::Conflict`] with [`Conflict::Stopped`](crate::manage::Conflict::Stopped)
    /// for a stopped slot (it has no process, so no counters).
    ///
    /// ```no_run
    /// # async fn f(sup: nanny::Supervisor) -> Result<(), nanny::Error> {
    /// sup.reset_stats("api:01").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_stats(&self, worker: impl Into<WorkerRef>) -> Result<(), Error> {
        let worker = worker.into();
        self.call(|reply| Command::ResetStats { worker, reply }).await?
    }
}
