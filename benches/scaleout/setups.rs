//! The two setups the bench compares, each with the same worker binary
//! (the `nanny-test-worker` fixture) and the same workers in all:
//!
//! * [`memory`]: one supervisor in this process with a local pool of
//!   `n × workers` workers, the in-memory queue;
//! * [`Cluster`]: `n` worker hosts (processes, see [`hosts`](crate::hosts))
//!   and, in this process, a caller-only host (a supervisor whose pool has
//!   0 workers and a [`RedisQueue`]), all on one namespace of the bench's
//!   `redis-server`.

use nanny::{Pool, RedisQueue, Supervisor, WorkerSpec};

use crate::cpu::Part;
use crate::hosts::{Shape, Timers, WorkerHost, FIXTURE};

/// The caller's name (`Response::host` never says it: it runs nothing).
const CALLER: &str = "bench";

/// The in-memory baseline for `n` hosts of `shape`.
pub(crate) async fn memory(n: usize, shape: Shape) -> Supervisor {
    let pool = Pool::default_pool(WorkerSpec::new(FIXTURE))
        .workers(n * shape.workers)
        .concurrency(shape.concurrency);
    Supervisor::builder()
        .pool(pool)
        .start()
        .await
        .expect("the in-memory supervisor starts")
}

/// The worker processes of an in-memory supervisor, for [`Sample`].
///
/// [`Sample`]: crate::cpu::Sample
pub(crate) async fn workers(sup: &Supervisor) -> Vec<(Part, u32)> {
    let health = sup.health().await.expect("the workers' health");
    health.iter().map(|h| (Part::Workers, h.pid)).collect()
}

/// `n` worker hosts on one namespace, and the name of each.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) url: String,
    pub(crate) ns: String,
    pub(crate) timers: Timers,
    pub(crate) hosts: Vec<(String, WorkerHost)>,
}

impl Cluster {
    /// Starts `n` hosts of `shape` on `url`'s Redis, namespace `ns`; each
    /// is `READY` when this returns. Blocking: call it outside the runtime.
    pub(crate) fn start(url: &str, ns: &str, n: usize, shape: Shape, timers: Timers) -> Cluster {
        let hosts = (1..=n)
            .map(|i| {
                let name = format!("h{i}");
                let host = WorkerHost::start(url, ns, &name, shape, timers);
                (name, host)
            })
            .collect();
        Cluster {
            url: url.to_owned(),
            ns: ns.to_owned(),
            timers,
            hosts,
        }
    }

    /// The caller-only host, in this process.
    pub(crate) async fn caller(&self) -> Supervisor {
        let queue = RedisQueue::new(&self.url, &self.ns)
            .host(CALLER)
            .heartbeat(self.timers.heartbeat)
            .min_idle(self.timers.min_idle)
            .janitor(self.timers.janitor);
        Supervisor::builder()
            .pool(Pool::default_pool(WorkerSpec::new(FIXTURE)).workers(0))
            .queue(queue)
            .start()
            .await
            .expect("the caller-only host starts")
    }

    /// Every process of the hosts, for [`Sample`](crate::cpu::Sample).
    pub(crate) fn parts(&self) -> Vec<(Part, u32)> {
        let mut parts = Vec::new();
        for (_, host) in &self.hosts {
            let (sup, workers) = host.pids();
            parts.extend(sup.map(|p| (Part::Hosts, p)));
            parts.extend(workers.iter().map(|&w| (Part::Workers, w)));
        }
        parts
    }

    /// Soft-kills every host and waits for each to exit. Blocking.
    pub(crate) fn stop(self) {
        for (_, host) in self.hosts {
            host.stop();
        }
    }
}
