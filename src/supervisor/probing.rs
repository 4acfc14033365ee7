//! Readiness probes and socket activation, the supervisor task's side:
//! which listening sockets a new worker inherits, its probe task, and what
//! a passed probe does (see [`crate::readiness`] for the rules).
//!
//! A worker with a probe keeps it in its entry as a drop guard: removing
//! the entry (its exit) ends the probe task, and so does the supervisor's
//! `kill` token at shutdown, whose child token it is. So no probe outlives
//! its worker or the supervisor.

use tokio_util::sync::DropGuard;

use super::task::Task;
use crate::health::{WorkerId, WorkerState};
use crate::listen::Distribution;
use crate::worker::{probe, spawn};

/// `LISTEN_FDNAMES`' name for a listener without one (systemd's word).
const UNNAMED: &str = "unknown";

impl Task {
    /// The listening sockets `pool`'s workers inherit by socket activation,
    /// in listener order.
    pub(super) fn activated(&self, pool: usize) -> Vec<spawn::Activated<'_>> {
        use std::os::fd::AsFd;
        self.listeners
            .iter()
            .filter(|l| l.pool == pool && l.cfg.distribution == Distribution::SocketActivation)
            .filter_map(|l| {
                let fd = l.socket.as_deref()?.as_fd();
                let name = l.cfg.name.as_deref().unwrap_or(UNNAMED);
                Some(spawn::Activated { fd, name })
            })
            .collect()
    }

    /// Starts the probe of new worker `id` of `pool`, if its pool has one;
    /// the guard ends it.
    pub(super) fn start_probe(&self, id: WorkerId, pool: usize) -> Option<DropGuard> {
        let readiness = self.pools[pool].cfg.probe()?;
        let stop = self.kill.child_token();
        let deadline = tokio::time::Instant::now() + self.pools[pool].settings.start_timeout;
        probe::start(
            &self.tracker,
            id,
            readiness,
            deadline,
            self.links_tx.clone(),
            stop.clone(),
        );
        Some(stop.drop_guard())
    }

    /// A worker's probe passed: a plain worker is ready now, a protocol
    /// worker once it has said `Ready` too (at once if it has).
    pub(super) fn on_probe_passed(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.probe.take().is_none() || w.online {
            return;
        }
        let plain = self.pools[w.pool].cfg.spec.plain;
        let ready = match w.state {
            WorkerState::Spawning => plain,
            WorkerState::Starting => w.said_ready,
            _ => false, // stopping: too late
        };
        if ready {
            self.on_online(id);
        }
    }

    /// A protocol worker's first `Ready`: online now, or once its probe
    /// passes.
    pub(super) fn on_said_ready(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.probe.is_some() {
            w.said_ready = true;
        } else {
            self.on_online(id);
        }
    }
}
