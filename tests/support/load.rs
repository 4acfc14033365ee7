//! Constant load for the tests that change workers under it (reloads,
//! deploys): enqueue loops and connection loops that run until stopped
//! and count every answer by the worker that gave it, and every failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nanny::{EnqueueOptions, Supervisor};
use tokio::task::JoinHandle;

use super::conns::try_served_by;
use super::{eventually, Cmd, Whoami};

/// What the load saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Answered requests per worker id.
    pub(crate) answers: BTreeMap<u64, usize>,
    /// Failed requests, with their errors.
    pub(crate) failed: Vec<String>,
    /// Served connections per worker id.
    pub(crate) connections: BTreeMap<u64, usize>,
    /// Refused or broken connections, with what went wrong.
    pub(crate) refused: Vec<String>,
    /// Each request answer's value of the variable `Cmd::Env` asked for.
    pub(crate) env: BTreeMap<Option<String>, usize>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (w, n) in other.answers {
            *self.answers.entry(w).or_default() += n;
        }
        for (w, n) in other.connections {
            *self.connections.entry(w).or_default() += n;
        }
        for (v, n) in other.env {
            *self.env.entry(v).or_default() += n;
        }
        self.failed.extend(other.failed);
        self.refused.extend(other.refused);
    }
}

/// Loops that keep `sup` (and its listener) busy until [`Load::stop`].
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Tally>>,
    /// Answers so far, over every loop (to wait for the load to run).
    seen: Arc<std::sync::atomic::AtomicUsize>,
}

impl Load {
    /// `enqueuers` loops of `Cmd::Env { name: env }` to `pool` (the first
    /// pool with `None`), and `connectors` loops of one connection and one
    /// line each to `addr`.
    pub(crate) fn start(
        sup: &Supervisor,
        pool: Option<&str>,
        enqueuers: usize,
        addr: Option<SocketAddr>,
        connectors: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..enqueuers {
            let (sup, stop, seen) = (sup.clone(), Arc::clone(&stop), Arc::clone(&seen));
            let pool = pool.map(str::to_owned);
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let cmd = Cmd::Env {
                    name: "TEST_RELEASE".into(),
                    gate: None,
                };
                while !stop.load(Ordering::Relaxed) {
                    let options = pool
                        .clone()
                        .map_or_else(EnqueueOptions::new, |p| EnqueueOptions::new().pool(p));
                    match sup.enqueue_with(&cmd, options).await {
                        Ok(resp) => {
                            let (me, release): (Whoami, Option<String>) = resp.data().expect("an Env answer");
                            *tally.answers.entry(me.worker_id).or_default() += 1;
                            *tally.env.entry(release).or_default() += 1;
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tally.failed.push(e.to_string()),
                    }
                }
                tally
            }));
        }
        for c in 0..connectors {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            let addr = addr.expect("an address for connections");
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match try_served_by(addr, &format!("load-{c} {i}")).await {
                        Ok(w) => {
                            *tally.connections.entry(w).or_default() += 1;
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tally.refused.push(e),
                    }
                }
                tally
            }));
        }
        Self { stop, tasks, seen }
    }

    /// Waits until the loops have `n` more answers than when called.
    pub(crate) async fn more(&self, n: usize) {
        let from = self.seen.load(Ordering::Relaxed);
        eventually(&format!("{n} more answers under load"), || async {
            (self.seen.load(Ordering::Relaxed) >= from + n).then_some(())
        })
        .await;
    }

    /// Stops every loop and adds up what they saw.
    pub(crate) async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for t in super::join_all(self.tasks).await {
            total.merge(t);
        }
        total
    }
}
