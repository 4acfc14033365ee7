//! Changing a running pool's definition: `update_pool` (its spec) and
//! `update_pool_config` (its whole [`Pool`]: spec, settings and options).
//! Both are checked as at start and take effect for the workers started
//! from then on; a reload moves the running ones (see [`crate::manage`]).

use super::task::Task;
use crate::error::{ConfigError, Error};
use crate::manage::Operation;
use crate::pool::{Pool, WorkerSpec};

impl Task {
    /// `update_pool`: the spec every worker of `pool` starts from from now
    /// on (a reload moves the running ones).
    pub(super) fn on_update(&mut self, pool: &str, spec: WorkerSpec) -> Result<(), Error> {
        let index = self.admit_pool_op(pool, Operation::Update)?;
        let mut next = self.pools[index].cfg.clone();
        next.spec = spec;
        self.configure(index, next)
    }

    /// `update_pool_config`: `pool` replaces the definition of the running
    /// pool of its name, but for its worker count (the slots', changed by
    /// `resize`).
    pub(super) fn on_configure(&mut self, pool: Pool) -> Result<(), Error> {
        let index = self.admit_pool_op(&pool.name, Operation::Update)?;
        self.configure(index, pool)
    }

    fn configure(&mut self, index: usize, mut next: Pool) -> Result<(), Error> {
        let p = &self.pools[index];
        let not_live = |key| {
            Error::Config(ConfigError::NotLive {
                pool: p.cfg.name.clone(),
                key,
            })
        };
        if next.spec.plain != p.cfg.spec.plain {
            return Err(not_live("plain"));
        }
        if next.logical_ids != p.cfg.logical_ids {
            return Err(not_live("logical_ids"));
        }
        next.workers = p.cfg.workers;
        next.workers_set = p.cfg.workers_set;
        self.check(index, &next).map_err(Error::Config)?;
        let settings = self.cfg.defaults.with(&next.settings);
        let p = &mut self.pools[index];
        p.budget.retune(settings.max_restarts, settings.restart_window);
        tracing::info!(pool = %p.cfg.name, program = ?next.spec.program, "pool definition updated");
        p.settings = settings;
        p.cfg = next.clone();
        if let Some(kept) = self.cfg.pools.get_mut(index) {
            *kept = next;
        }
        Ok(())
    }

    /// The start's checks ([`crate::Builder::validate`]) of the
    /// configuration with `next` in place of pool `index`.
    fn check(&self, index: usize, next: &Pool) -> Result<(), ConfigError> {
        let mut cfg = self.cfg.clone();
        cfg.pools = self.pools.iter().map(|p| p.cfg.clone()).collect();
        cfg.pools[index] = next.clone();
        // The count is the slots', which may differ from the one at start.
        for (pool, state) in cfg.pools.iter_mut().zip(&self.pools) {
            if pool.logical_ids.is_none() {
                pool.workers = state.slots.len().max(1);
            }
        }
        cfg.validate()
    }
}
