//! The management operations under way: what each one claims (a slot, or
//! whole pools), where it stands, and who waits for it. The rules of
//! exclusion live here ([`Ops::busy`]); the steps are the task's (see
//! `manage`).
//!
//! An operation is one of three shapes:
//! * **Starting**: a new worker in a slot (add, start), done once ready;
//! * **Reaping**: workers on their way out (stop, remove, remove all), done
//!   once every one is reaped;
//! * **Rolling**: slots replaced one at a time, make-before-break
//!   (restart, reload, update), `reload_delay` apart, done once every
//!   replacement is ready and every replaced worker reaped.

use std::collections::VecDeque;
use std::time::Instant;

use tokio_util::time::delay_queue;

use super::command::Reply;
use super::slots::SlotKey;
use crate::error::Error;
use crate::health::WorkerId;
use crate::manage::{Operation, StartFailure};

/// An operation's handle, unique for the supervisor's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OpId(u64);

/// What a management call answers: the worker it started, if it starts one.
pub(crate) type OpReply = Reply<Result<Option<WorkerId>, Error>>;

/// What an operation holds while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// One slot of a pool.
    Slot(usize, SlotKey),
    /// A whole pool.
    Pool(usize),
}

impl Claim {
    fn pool(self) -> usize {
        match self {
            Claim::Slot(p, _) | Claim::Pool(p) => p,
        }
    }

    /// Whether two claims exclude each other: the same slot, or a whole
    /// pool and anything in it.
    fn overlaps(self, other: Claim) -> bool {
        match (self, other) {
            (Claim::Slot(p, a), Claim::Slot(q, b)) => p == q && a == b,
            _ => self.pool() == other.pool(),
        }
    }
}

/// One slot's replacement in a rolling operation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub(super) pool: usize,
    pub(super) slot: SlotKey,
    pub(super) old: WorkerId,
    pub(super) new: WorkerId,
}

/// A rolling replacement's progress.
#[derive(Debug)]
pub(super) struct Rolling {
    /// Slots still to replace, in order.
    pub(super) steps: VecDeque<(usize, SlotKey)>,
    /// The replacement being started.
    pub(super) current: Option<Step>,
    /// The `reload_delay` before the next step.
    pub(super) delay: Option<delay_queue::Key>,
    /// Replaced workers, draining until reaped.
    pub(super) replaced: Vec<WorkerId>,
    /// Workers spawned before this are replaced; later ones already run
    /// the current spec (a crash's refill during the reload).
    pub(super) since: Instant,
    /// The last replacement that became ready.
    pub(super) last: Option<WorkerId>,
    /// Whether to pause `reload_delay` between workers.
    pub(super) paced: bool,
}

/// Where an operation stands.
#[derive(Debug)]
pub(super) enum Progress {
    /// Waiting for `worker`, new in `slot`, to be ready.
    Starting {
        pool: usize,
        slot: SlotKey,
        worker: WorkerId,
    },
    /// Waiting for these workers to be reaped.
    Reaping(Vec<WorkerId>),
    Rolling(Rolling),
}

/// An operation under way.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) id: OpId,
    pub(super) kind: Operation,
    pub(super) claims: Vec<Claim>,
    pub(super) progress: Progress,
    /// A worker it started did not: the operation ends with the error.
    pub(super) failed: Option<(WorkerId, StartFailure)>,
    /// Set when every pool was asked for (a cluster reload): one more
    /// event at the end.
    pub(super) cluster: bool,
    pub(super) reply: OpReply,
}

/// The operations under way.
#[derive(Debug, Default)]
pub(super) struct Ops {
    next: u64,
    ops: Vec<Op>,
}

impl Ops {
    /// A fresh id for an operation about to be inserted.
    pub(super) fn next_id(&mut self) -> OpId {
        self.next += 1;
        OpId(self.next)
    }

    /// The operation that excludes `claim`, if one runs.
    pub(super) fn busy(&self, claim: Claim) -> Option<Operation> {
        self.ops
            .iter()
            .find(|op| op.claims.iter().any(|c| c.overlaps(claim)))
            .map(|op| op.kind)
    }

    pub(super) fn insert(&mut self, op: Op) {
        self.ops.push(op);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Every operation, to advance; put back with [`Ops::restore`].
    pub(super) fn take_all(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    /// Puts back the operations still under way (after any inserted meanwhile).
    pub(super) fn restore(&mut self, mut ops: Vec<Op>) {
        ops.append(&mut self.ops);
        self.ops = ops;
    }

    /// A worker `op` started did not become ready.
    pub(super) fn start_failed(&mut self, op: OpId, worker: WorkerId, why: StartFailure) {
        if let Some(op) = self.ops.iter_mut().find(|o| o.id == op) {
            op.failed.get_or_insert((worker, why));
        }
    }

    /// `op`'s `reload_delay` is over.
    pub(super) fn delay_over(&mut self, op: OpId) {
        if let Some(key) = self.delay_key(op) {
            *key = None;
        }
    }

    /// Where `op` keeps its `reload_delay` timer (moved by a pause).
    pub(super) fn delay_key(&mut self, op: OpId) -> Option<&mut Option<delay_queue::Key>> {
        match self.ops.iter_mut().find(|o| o.id == op) {
            Some(Op {
                progress: Progress::Rolling(r),
                ..
            }) => Some(&mut r.delay),
            _ => None,
        }
    }

    /// Ends every operation with `error` (the supervisor is stopping).
    pub(super) fn abort_all(&mut self, error: &Error) {
        for op in self.ops.drain(..) {
            let _ = op.reply.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_claim_excludes_its_slots_and_slots_exclude_only_themselves() {
        let mut keys = super::super::slots::KeySource::default();
        let slots = super::super::slots::Slots::new(2, None, &mut keys);
        let (a, b) = (slots.by_number(1).unwrap().key, slots.by_number(2).unwrap().key);
        assert!(Claim::Pool(0).overlaps(Claim::Slot(0, a)));
        assert!(Claim::Slot(0, a).overlaps(Claim::Pool(0)));
        assert!(Claim::Slot(0, a).overlaps(Claim::Slot(0, a)));
        assert!(!Claim::Slot(0, a).overlaps(Claim::Slot(0, b)));
        assert!(!Claim::Pool(0).overlaps(Claim::Pool(1)));
        assert!(!Claim::Pool(1).overlaps(Claim::Slot(0, a)));
    }
}
