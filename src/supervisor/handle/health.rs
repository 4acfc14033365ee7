//! The handle's health query: the task's view of each worker, with CPU
//! time read here, off the task (sysinfo is costly).

use std::time::Duration;

use super::Supervisor;
use crate::error::Error;
use crate::health::WorkerHealth;
use crate::supervisor::command::Command;

impl Supervisor {
    /// Per-worker health: pid, logical id, RSS, the worker's own heartbeat,
    /// in-flight count, state, and CPU time (read with `sysinfo`).
    pub async fn health(&self) -> Result<Vec<WorkerHealth>, Error> {
        let mut health = self.call(Command::Health).await?;
        let pids: Vec<sysinfo::Pid> = health.iter().map(|h| sysinfo::Pid::from_u32(h.pid)).collect();
        // sysinfo costs ~45 µs per process: off the runtime, and only here.
        let cpu = tokio::task::spawn_blocking(move || {
            let Ok(mut sys) = sysinfo::System::new() else {
                return Vec::new();
            };
            sys.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&pids),
                true,
                sysinfo::ProcessRefreshKind::nothing().with_cpu(),
            );
            pids.iter()
                .map(|pid| {
                    sys.process(*pid)
                        .map(|p| Duration::from_millis(p.accumulated_cpu_time()))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (h, cpu) in health.iter_mut().zip(cpu) {
            h.cpu_time = cpu;
        }
        Ok(health)
    }
}
