//! The executor's leases: every heartbeat, one renewal per pool for
//! the deliveries that run here, and a read of their cancel flags.
//!
//! A delivery that is no longer this host's (reclaimed by another), or
//! that could not be renewed for longer than `min_idle` less a heartbeat
//! (others may reclaim it by now), is *lost*: its attempt is cancelled on
//! the local worker and its result dropped. A raised cancel flag (the
//! caller's deadline or drop) cancels the attempt too, which then
//! completes as cancelled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::executor::Executor;

impl Executor {
    /// Renews the leases of what runs and reads its cancel flags, every
    /// heartbeat.
    pub(crate) async fn heartbeat_loop(self: &Arc<Self>, stop: &CancellationToken) {
        let mut tick = tokio::time::interval(self.shared.timers.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            for pool in 0..self.shared.pools.len() {
                self.renew(pool).await;
            }
            self.poll_cancels().await;
        }
    }

    async fn renew(&self, pool: usize) {
        let _turn = self.leases.lock().await;
        let held: Vec<(String, u32)> = self
            .running()
            .values()
            .filter(|r| r.pool == pool)
            .map(|r| (r.delivery.id.clone(), r.count.load(Ordering::Acquire)))
            .collect();
        if held.is_empty() {
            return;
        }
        let shared = &self.shared;
        let renewed = shared.backend.renew(pool, &held).await;
        let now = Instant::now();
        let mut running = self.running();
        match renewed {
            Ok(lost) => {
                shared.counters.outcome(true);
                for (id, _) in &held {
                    if let Some(r) = running.get_mut(id) {
                        r.renewed = now;
                    }
                }
                let held: std::collections::HashMap<&str, u32> =
                    held.iter().map(|(id, d)| (id.as_str(), *d)).collect();
                for id in lost {
                    // Unless this host claimed it again meanwhile (a new count).
                    let asked = held.get(id.as_str()).copied();
                    if let Some(r) = running
                        .get(&id)
                        .filter(|r| Some(r.count.load(Ordering::Acquire)) == asked)
                    {
                        r.ending.lose(&r.cancel);
                    }
                }
            }
            Err(e) => {
                drop(shared.queue_error(&e));
                // Others may reclaim it after min_idle: give it up a heartbeat before.
                let bound = shared.timers.min_idle.saturating_sub(shared.timers.heartbeat);
                for r in running.values().filter(|r| r.pool == pool) {
                    if now.duration_since(r.renewed) >= bound {
                        r.ending.lose(&r.cancel);
                    }
                }
            }
        }
    }

    async fn poll_cancels(&self) {
        let rids: Vec<(String, String)> = self
            .running()
            .iter()
            .map(|(id, r)| (id.clone(), r.rid.clone()))
            .collect();
        if rids.is_empty() {
            return;
        }
        let asked: Vec<&str> = rids.iter().map(|(_, rid)| rid.as_str()).collect();
        let flags = self.shared.backend.cancelled(&asked).await;
        let Ok(flags) = self.shared.counted(flags) else {
            return;
        };
        let running = self.running();
        for ((id, _), raised) in rids.iter().zip(flags) {
            if let (true, Some(r)) = (raised, running.get(id)) {
                r.ending.cancelled_by_caller(&r.cancel);
            }
        }
    }
}
