//! The management half of the [`Supervisor`] handle: one worker at a time,
//! rolling reloads, deploys (the contract is in [`crate::manage`]).

use super::super::command::{Command, Manage};
use super::Supervisor;
use crate::error::Error;
use crate::pool::{Pool, WorkerSpec};
use crate::{WorkerId, WorkerRef};

impl Supervisor {
    async fn manage(&self, call: Manage) -> Result<Option<WorkerId>, Error> {
        self.call(|reply| Command::Manage { call, reply }).await?
    }

    /// The worker a call that starts one answers with.
    async fn manage_start(&self, call: Manage, asked: WorkerRef) -> Result<WorkerId, Error> {
        self.manage(call)
            .await?
            .ok_or(Error::UnknownWorker { worker: asked })
    }

    /// Adds a worker to `pool` in a new slot (the smallest free name,
    /// `pool:NN`, and the next free logical id); returns its id once it is
    /// ready. A worker that does not start fails the call
    /// ([`Error::StartFailed`]) and its slot is removed again.
    pub async fn add_worker(&self, pool: &str) -> Result<WorkerId, Error> {
        let call = Manage::Add {
            pool: pool.to_owned(),
            args: Vec::new(),
            cpus: None,
        };
        self.manage_start(call, WorkerRef::Name(pool.to_owned())).await
    }

    /// Removes a worker and its slot: the worker drains (its requests
    /// finish, its connections close, within `drain_timeout`), then stops;
    /// returns once it is reaped. A stopped slot is removed at once.
    pub async fn remove_worker(&self, worker: impl Into<WorkerRef>) -> Result<(), Error> {
        self.manage(Manage::Remove(worker.into())).await.map(drop)
    }

    /// Stops a worker and keeps its slot, stopped: listed, not refilled,
    /// not waited for by [`ready`](Self::ready), until
    /// [`start_worker`](Self::start_worker). The worker drains, then stops;
    /// returns once it is reaped. Only a running slot ([`Conflict::Stopped`](crate::manage::Conflict::Stopped) otherwise).
    pub async fn stop_worker(&self, worker: impl Into<WorkerRef>) -> Result<(), Error> {
        self.manage(Manage::Stop(worker.into())).await.map(drop)
    }

    /// Starts a stopped slot again (by its name: a stopped slot has no
    /// worker id); returns the new worker's id once it is ready. Only a
    /// stopped slot ([`Conflict::Running`](crate::manage::Conflict::Running) otherwise); a worker that does not
    /// start leaves the slot stopped.
    pub async fn start_worker(&self, worker: impl Into<WorkerRef>) -> Result<WorkerId, Error> {
        let worker = worker.into();
        self.manage_start(Manage::Start(worker.clone()), worker).await
    }

    /// Replaces a worker, make-before-break: the replacement starts in the
    /// same slot (same name, same logical id), and only once it is ready
    /// does the old worker drain and stop, so capacity never dips. Returns
    /// the replacement's id once the old worker is reaped. A replacement
    /// that does not start fails the call with the old worker still serving.
    pub async fn restart_worker(&self, worker: impl Into<WorkerRef>) -> Result<WorkerId, Error> {
        let worker = worker.into();
        self.manage_start(Manage::Restart(worker.clone()), worker).await
    }

    /// Removes every worker of `pool`, or of every pool with `None`
    /// (project-cluster's `removeAllWorkers`); returns once all are reaped.
    /// The pools stay, empty: [`add_worker`](Self::add_worker) or
    /// [`resize`](Self::resize) fill them again.
    pub async fn remove_all_workers(&self, pool: Option<&str>) -> Result<(), Error> {
        let pool = pool.map(str::to_owned);
        self.manage(Manage::RemoveAll { pool }).await.map(drop)
    }

    /// Rolling reload of `pool`, or of every pool in order with `None`:
    /// each running worker in turn gets a ready replacement, then drains
    /// and stops, `reload_delay` apart. Returns once every worker spawned
    /// before the call has been replaced and reaped; then an
    /// [`Event::PoolReloaded`](crate::Event::PoolReloaded) per pool (and
    /// [`Event::ClusterReloaded`](crate::Event::ClusterReloaded) for all).
    /// A replacement that does not start stops the reload
    /// ([`Error::StartFailed`], [`Event::ReloadFailed`](crate::Event::ReloadFailed)):
    /// the worker it was to replace keeps serving, as do those not reached.
    /// SIGHUP does this for every pool when the supervisor
    /// [handles signals](crate::Builder::handle_signals).
    pub async fn reload(&self, pool: Option<&str>) -> Result<(), Error> {
        let pool = pool.map(str::to_owned);
        self.manage(Manage::Reload { pool }).await.map(drop)
    }

    /// [`reload`](Self::reload) by project-cluster's name.
    pub async fn restart_all_workers(&self, pool: Option<&str>) -> Result<(), Error> {
        self.reload(pool).await
    }

    /// Sets the spec `pool`'s workers start from: every worker started from
    /// now on (replacements, refills, added workers) runs it, and a
    /// [`reload`](Self::reload) moves the running ones to it without
    /// downtime (a deploy). The program is checked as at start
    /// ([`Error::Config`]); a plain pool stays plain
    /// ([`ConfigError::NotLive`](crate::ConfigError::NotLive)). The spec-only
    /// case of [`update_pool_config`](Self::update_pool_config).
    ///
    /// ```no_run
    /// # async fn f(sup: nanny::Supervisor) -> Result<(), nanny::Error> {
    /// use nanny::WorkerSpec;
    /// sup.update_pool("api", WorkerSpec::new("/srv/api/releases/42/api")).await?;
    /// sup.reload(Some("api")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_pool(&self, pool: &str, spec: WorkerSpec) -> Result<(), Error> {
        let call = Manage::Update {
            pool: pool.to_owned(),
            spec: Box::new(spec),
        };
        self.manage(call).await.map(drop)
    }

    /// Replaces the whole definition of the running pool named as `pool`
    /// is: its spec, its own settings (timers, restart budget, health
    /// rules: laid over the builder's as at start), restart policy,
    /// recycling rules, readiness probe, concurrency, CPU affinity,
    /// environment factory and what its workers may ask. Every worker
    /// started from now on gets it (its concurrency too), and a
    /// [`reload`](Self::reload) moves the running ones; the rules read as
    /// things happen (the restart policy and budget, `respawn_count`, what
    /// workers may ask) apply at once. The
    /// restarts already counted stay in the pool's budget.
    ///
    /// The worker count is not taken: it is the pool's slots', changed
    /// with [`resize`](Self::resize).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPool`] if no pool has its name;
    /// [`Error::Config`] with the start's [`ConfigError`](crate::ConfigError)
    /// (nothing changes) for a setting out of range, or with
    /// [`ConfigError::NotLive`](crate::ConfigError::NotLive) naming the key
    /// for what a running pool cannot change (`plain`, `logical_ids`);
    /// [`Error::Conflict`] while another operation holds the pool.
    ///
    /// ```no_run
    /// # async fn f(sup: nanny::Supervisor) -> Result<(), nanny::Error> {
    /// use nanny::{Pool, RestartPolicy, WorkerSpec};
    /// let pool = Pool::new("api", WorkerSpec::new("/srv/api/api"))
    ///     .restart(RestartPolicy::OnFailure)
    ///     .max_requests(10_000, 500);
    /// sup.update_pool_config(pool).await?;
    /// sup.reload(Some("api")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_pool_config(&self, pool: Pool) -> Result<(), Error> {
        self.manage(Manage::Configure(Box::new(pool))).await.map(drop)
    }
}
