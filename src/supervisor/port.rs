//! The local port of the scale-out executor ([`crate::scaleout`]): it runs
//! requests read from a shared queue on this supervisor's pools, without
//! the shared queue, and asks for a pool's free capacity.
//!
//! It holds only a *weak* sender: the executor never keeps the supervisor
//! task alive (dropping every [`Supervisor`](super::Supervisor) handle
//! still hard-kills, and a soft kill still ends), and a strong one only
//! for the moment of a send. Every call also ends at `stop` (the task is
//! finishing and reads no more commands, while it waits for the
//! executor to end).

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::command::{Command, NewRequest};
use super::ids::RequestId;
use super::Response;
use crate::error::Error;
use crate::retries::Retries;

/// A weak way into the supervisor task, for the executor.
#[derive(Debug, Clone)]
pub(crate) struct LocalPort {
    tx: mpsc::WeakSender<Command>,
    pools: Vec<String>,
    stop: CancellationToken,
}

/// A request the local supervisor has taken. Dropped before its answer, it
/// cancels the request (its worker is told to cancel the attempt).
#[derive(Debug)]
pub(crate) struct Submitted {
    id: RequestId,
    rx: oneshot::Receiver<Result<Response, Error>>,
    tx: mpsc::WeakSender<Command>,
    armed: bool,
}

impl LocalPort {
    /// A port on the task behind `tx`, whose pools are `pools`.
    pub(crate) fn new(tx: mpsc::WeakSender<Command>, pools: Vec<String>, stop: CancellationToken) -> Self {
        Self { tx, pools, stop }
    }

    /// Free capacity of pool `pool` (0 while the supervisor stops, the
    /// pool is failed or has no ready worker); `None` once the supervisor
    /// task is gone.
    pub(crate) async fn capacity(&self, pool: usize) -> Option<usize> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.upgrade()?;
        let asked = async move {
            tx.send(Command::Capacity { pool, reply }).await.ok()?;
            rx.await.ok()
        };
        tokio::select! {
            free = asked => free,
            () = self.stop.cancelled() => None,
        }
    }

    /// Queues `payload` on `pool` locally, with this per-attempt timeout
    /// and these retries.
    pub(crate) async fn submit(
        &self,
        pool: usize,
        payload: Vec<u8>,
        timeout: Option<Duration>,
        retries: Retries,
    ) -> Result<Submitted, Error> {
        let id = RequestId::new();
        let (reply, rx) = oneshot::channel();
        let request = NewRequest {
            id,
            pool: Some(self.pools[pool].clone()),
            payload,
            created_at: SystemTime::now(),
            created: Instant::now(),
            timeout,
            deadline: None,
            retries,
            attachment: None,
            key: None,
            reply,
        };
        let tx = self.tx.upgrade().ok_or(Error::ShuttingDown)?;
        tokio::select! {
            sent = tx.send(Command::Enqueue(request)) => sent.map_err(|_| Error::ShuttingDown)?,
            () = self.stop.cancelled() => return Err(Error::ShuttingDown),
        }
        Ok(Submitted {
            id,
            rx,
            tx: self.tx.clone(),
            armed: true,
        })
    }
}

impl Submitted {
    /// The local answer. Cancel safe: it may be awaited again.
    pub(crate) async fn answer(&mut self) -> Result<Response, Error> {
        let answer = (&mut self.rx).await.unwrap_or(Err(Error::ShuttingDown));
        self.armed = false;
        answer
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(tx) = self.tx.upgrade() {
            // Full: the attempt ends by its own timeout; nobody waits for it.
            let _ = tx.try_send(Command::Cancel(self.id));
        }
    }
}

impl super::task::Task {
    /// Pool `pool`'s free capacity: its ready workers' free concurrency
    /// (what they can take beside what they run), less what waits in its
    /// local queue. None while the supervisor stops or the pool is failed.
    pub(super) fn free_capacity(&self, pool: usize) -> usize {
        if !self.accepting() || self.pools.get(pool).is_none_or(|p| p.failed) {
            return 0;
        }
        let free: usize = self
            .workers
            .iter()
            .filter(|(_, w)| {
                w.pool == pool
                    && w.online
                    && !w.busy
                    && w.stop_reason.is_none()
                    && w.state == crate::health::WorkerState::Ready
            })
            .map(|(id, w)| w.concurrency.saturating_sub(self.ledger.in_flight(*id)))
            .sum();
        free.saturating_sub(self.ledger.queued(pool))
    }
}
