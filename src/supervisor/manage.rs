//! Management operations on the supervisor task: add, remove, stop, start
//! and restart one worker; reload, update and empty whole pools (the
//! public contract is in [`crate::manage`]).
//!
//! Each call is admitted here (its target resolved, its preconditions and
//! conflicts checked: nothing changes when it is refused), makes its first
//! moves at once, and becomes an [`Op`] that `Task::advance_ops` (in
//! `progress`) moves on after every event until it is done, then answers
//! its caller.

use std::collections::VecDeque;
use std::time::Instant;

use super::command::Manage;
use super::ops::{Claim, Op, OpId, OpReply, Progress, Rolling};
use super::slots::{parse_name, SlotKey};
use super::task::Task;
use crate::error::Error;
use crate::events::StopReason;
use crate::health::WorkerId;
use crate::manage::{Conflict, Operation};
use crate::WorkerRef;

/// What admitting a call produced.
enum Launch {
    /// Done at once.
    Done(Option<WorkerId>),
    /// Under way.
    Run {
        kind: Operation,
        claims: Vec<Claim>,
        progress: Progress,
        cluster: bool,
    },
}

impl Task {
    pub(super) fn on_manage(&mut self, call: Manage, reply: OpReply) {
        if !self.accepting() {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let id = self.ops.next_id();
        let launched = match call {
            Manage::Add { pool, args, cpus } => self.launch_add(id, &pool, args, cpus),
            Manage::Start(w) => self.launch_start(id, &w),
            Manage::Stop(w) => self.launch_leave(&w, Operation::Stop),
            Manage::Remove(w) => self.launch_leave(&w, Operation::Remove),
            Manage::Restart(w) => self.launch_restart(&w),
            Manage::Reload { pool } => self.launch_reload(pool.as_deref()),
            Manage::RemoveAll { pool } => self.launch_remove_all(pool.as_deref()),
            Manage::Update { pool, spec } => self.on_update(&pool, *spec).map(|()| Launch::Done(None)),
            Manage::Configure(pool) => self.on_configure(*pool).map(|()| Launch::Done(None)),
        };
        match launched {
            Err(e) => {
                tracing::warn!(error = %e, "management call refused");
                let _ = reply.send(Err(e));
            }
            Ok(Launch::Done(worker)) => {
                let _ = reply.send(Ok(worker));
            }
            Ok(Launch::Run {
                kind,
                claims,
                progress,
                cluster,
            }) => self.ops.insert(Op {
                id,
                kind,
                claims,
                progress,
                failed: None,
                cluster,
                reply,
            }),
        }
    }

    /// Refuses `op` on `claim` while another operation holds it (or a
    /// resize of its pool is under way).
    fn check_free(&self, claim: Claim, op: Operation, target: &str) -> Result<(), Error> {
        let pool = match claim {
            Claim::Slot(p, _) | Claim::Pool(p) => p,
        };
        let resizing = (op != Operation::Resize && self.resize_waiters.iter().any(|(p, _)| *p == pool))
            .then_some(Operation::Resize);
        match self.ops.busy(claim).or(resizing) {
            Some(busy) => Err(Error::Conflict {
                operation: op,
                target: target.to_owned(),
                reason: Conflict::Busy(busy),
            }),
            None => Ok(()),
        }
    }

    /// The pool a pool-wide `op` names, if it is free; with no name, every
    /// pool (all must be free).
    fn admit_pools(&self, pool: Option<&str>, op: Operation) -> Result<Vec<usize>, Error> {
        let pools = match pool {
            Some(name) => vec![self.pool_index(name)?],
            None => (0..self.pools.len()).collect(),
        };
        for &p in &pools {
            self.check_free(Claim::Pool(p), op, &self.pools[p].cfg.name)?;
        }
        Ok(pools)
    }

    /// [`admit_pools`](Self::admit_pools) for one named pool.
    pub(super) fn admit_pool_op(&self, pool: &str, op: Operation) -> Result<usize, Error> {
        if !self.accepting() {
            return Err(Error::ShuttingDown);
        }
        Ok(self.admit_pools(Some(pool), op)?[0])
    }

    /// The slot `worker` names: a name's, or the one an id's worker holds.
    fn resolve_slot(&self, worker: &WorkerRef, op: Operation) -> Result<(usize, SlotKey), Error> {
        let unknown = || Error::UnknownWorker {
            worker: worker.clone(),
        };
        match worker {
            WorkerRef::Id(id) => {
                let w = self.workers.get(id).ok_or_else(unknown)?;
                let held = (self.pools[w.pool].slots.get(w.slot)).is_some_and(|s| s.worker == Some(*id));
                if !held {
                    return Err(Error::Conflict {
                        operation: op,
                        target: w.name.clone(),
                        reason: Conflict::Leaving,
                    });
                }
                Ok((w.pool, w.slot))
            }
            WorkerRef::Name(name) => {
                let (pool, number) = parse_name(name).ok_or_else(unknown)?;
                let pool = self
                    .pools
                    .iter()
                    .position(|p| p.cfg.name == pool)
                    .ok_or_else(unknown)?;
                let slot = self.pools[pool].slots.by_number(number).ok_or_else(unknown)?;
                Ok((pool, slot.key))
            }
        }
    }

    /// The live worker `worker` names (a name: its slot's worker now).
    pub(super) fn live_worker(&self, worker: &WorkerRef) -> Result<WorkerId, Error> {
        let id = match worker {
            WorkerRef::Id(id) => Some(*id),
            WorkerRef::Name(_) => self
                .resolve_slot(worker, Operation::Restart)
                .ok()
                .and_then(|(pool, slot)| self.pools[pool].slots.get(slot)?.worker),
        };
        id.filter(|id| self.workers.contains_key(id))
            .ok_or_else(|| Error::UnknownWorker {
                worker: worker.clone(),
            })
    }

    pub(super) fn slot_name(&self, pool: usize, slot: SlotKey) -> String {
        let p = &self.pools[pool];
        p.slots.get(slot).map_or_else(
            || p.cfg.name.clone(),
            |s| super::slots::worker_name(&p.cfg.name, s.number),
        )
    }

    /// A slot named for `op` that no other operation holds.
    fn admit_slot(&self, worker: &WorkerRef, op: Operation) -> Result<(usize, SlotKey, String), Error> {
        let (pool, slot) = self.resolve_slot(worker, op)?;
        let name = self.slot_name(pool, slot);
        self.check_free(Claim::Slot(pool, slot), op, &name)?;
        Ok((pool, slot, name))
    }

    fn launch_add(
        &mut self,
        id: OpId,
        pool: &str,
        args: Vec<std::ffi::OsString>,
        cpus: Option<Vec<usize>>,
    ) -> Result<Launch, Error> {
        let pool = self.pool_index(pool)?;
        let p = &mut self.pools[pool];
        if p.slots.len() >= crate::Pool::MAX_WORKERS {
            return Err(Error::InvalidArgument(format!(
                "pool {:?} has the maximum of {} workers",
                p.cfg.name,
                crate::Pool::MAX_WORKERS
            )));
        }
        let slot = p.slots.add(&mut self.slot_keys).map_err(|_| {
            Error::InvalidArgument(format!(
                "pool {:?}: every one of its logical ids is in use",
                p.cfg.name
            ))
        })?;
        if let Some(s) = p.slots.get_mut(slot) {
            s.args = args;
            s.cpus = cpus;
        }
        let name = self.slot_name(pool, slot);
        let started = self
            .check_free(Claim::Slot(pool, slot), Operation::Add, &name)
            .and_then(|()| {
                self.spawn_into(pool, slot, None, Some(id))
                    .map_err(|reason| Error::StartFailed {
                        worker: name.clone(),
                        reason,
                    })
            });
        match started {
            Ok(worker) => Ok(starting(Operation::Add, pool, slot, worker)),
            Err(e) => {
                self.pools[pool].slots.remove(slot);
                Err(e)
            }
        }
    }

    fn launch_start(&mut self, id: OpId, worker: &WorkerRef) -> Result<Launch, Error> {
        let (pool, slot, name) = self.admit_slot(worker, Operation::Start)?;
        let s = self.pools[pool].slots.get_mut(slot).expect("resolved");
        if !s.stopped {
            return Err(conflict(Operation::Start, name, Conflict::Running));
        }
        s.stopped = false;
        s.info = Default::default();
        match self.spawn_into(pool, slot, None, Some(id)) {
            Ok(worker) => Ok(starting(Operation::Start, pool, slot, worker)),
            Err(reason) => {
                if let Some(s) = self.pools[pool].slots.get_mut(slot) {
                    s.stopped = true;
                }
                Err(Error::StartFailed { worker: name, reason })
            }
        }
    }

    /// `stop_worker` (the slot is kept, stopped) and `remove_worker` (the
    /// slot goes): the worker drains, then stops.
    fn launch_leave(&mut self, worker: &WorkerRef, op: Operation) -> Result<Launch, Error> {
        let (pool, slot, name) = self.admit_slot(worker, op)?;
        let p = &mut self.pools[pool];
        let holder = if op == Operation::Stop {
            let s = p.slots.get_mut(slot).expect("resolved");
            if s.stopped {
                return Err(conflict(op, name, Conflict::Stopped));
            }
            s.stopped = true;
            s.worker
        } else {
            p.slots.remove(slot).and_then(|s| s.worker)
        };
        let reason = if op == Operation::Stop {
            StopReason::Stopped
        } else {
            StopReason::Removed
        };
        let leaving = holder.map_or_else(Vec::new, |w| self.leave_slot(w, reason));
        self.fail_unserved(pool);
        Ok(reaping(op, vec![Claim::Slot(pool, slot)], leaving))
    }

    fn launch_remove_all(&mut self, pool: Option<&str>) -> Result<Launch, Error> {
        let pools = self.admit_pools(pool, Operation::RemoveAll)?;
        let mut leaving = Vec::new();
        for &pool in &pools {
            let p = &mut self.pools[pool];
            let mut holders = Vec::new();
            while let Some(last) = p.slots.last() {
                holders.extend(p.slots.remove(last).and_then(|s| s.worker));
            }
            for w in holders {
                leaving.extend(self.leave_slot(w, StopReason::Removed));
            }
            self.fail_unserved(pool);
        }
        let claims = pools.into_iter().map(Claim::Pool).collect();
        Ok(reaping(Operation::RemoveAll, claims, leaving))
    }

    fn launch_restart(&mut self, worker: &WorkerRef) -> Result<Launch, Error> {
        let (pool, slot, name) = self.admit_slot(worker, Operation::Restart)?;
        if self.pools[pool].slots.get(slot).is_some_and(|s| s.stopped) {
            return Err(conflict(Operation::Restart, name, Conflict::Stopped));
        }
        Ok(rolling(
            Operation::Restart,
            vec![Claim::Slot(pool, slot)],
            [(pool, slot)],
            false,
        ))
    }

    fn launch_reload(&mut self, pool: Option<&str>) -> Result<Launch, Error> {
        let pools = self.admit_pools(pool, Operation::Reload)?;
        let steps: Vec<(usize, SlotKey)> = (pools.iter())
            .flat_map(|&p| {
                let slots = self.pools[p].slots.iter().filter(|s| !s.stopped);
                slots.map(move |s| (p, s.key))
            })
            .collect();
        let claims = pools.into_iter().map(Claim::Pool).collect();
        let mut launch = rolling(Operation::Reload, claims, steps, true);
        if let Launch::Run { cluster, .. } = &mut launch {
            *cluster = pool.is_none();
        }
        Ok(launch)
    }

    /// A worker leaves its slot for good (removed, stopped, resized away):
    /// it drains, and a successor being started for it stops. Returns both.
    pub(super) fn leave_slot(&mut self, worker: WorkerId, reason: StopReason) -> Vec<WorkerId> {
        let successors: Vec<WorkerId> = (self.workers.iter())
            .filter(|(_, s)| s.replaces == Some(worker))
            .map(|(&s, _)| s)
            .collect();
        for &s in &successors {
            self.stop_worker(s, reason.clone(), true);
        }
        self.drain_worker(worker, reason);
        let mut leaving = successors;
        leaving.push(worker);
        leaving
    }
}

fn conflict(operation: Operation, target: String, reason: Conflict) -> Error {
    Error::Conflict {
        operation,
        target,
        reason,
    }
}

fn starting(kind: Operation, pool: usize, slot: SlotKey, worker: WorkerId) -> Launch {
    Launch::Run {
        kind,
        claims: vec![Claim::Slot(pool, slot)],
        progress: Progress::Starting { pool, slot, worker },
        cluster: false,
    }
}

fn reaping(kind: Operation, claims: Vec<Claim>, leaving: Vec<WorkerId>) -> Launch {
    if leaving.is_empty() {
        return Launch::Done(None);
    }
    Launch::Run {
        kind,
        claims,
        progress: Progress::Reaping(leaving),
        cluster: false,
    }
}

fn rolling(
    kind: Operation,
    claims: Vec<Claim>,
    steps: impl IntoIterator<Item = (usize, SlotKey)>,
    paced: bool,
) -> Launch {
    Launch::Run {
        kind,
        claims,
        progress: Progress::Rolling(Rolling {
            steps: steps.into_iter().collect::<VecDeque<_>>(),
            current: None,
            delay: None,
            replaced: Vec::new(),
            since: Instant::now(),
            last: None,
            paced,
        }),
        cluster: false,
    }
}
