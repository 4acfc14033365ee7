//! nanny, used as its documentation says: `Supervisor::enqueue` of a
//! `serde_bytes::ByteBuf` on the default multi-thread runtime (or, as
//! `nanny-ct`, on a current-thread runtime shared by the caller and the
//! supervisor: the low-latency configuration), restart delay 0. The
//! workers are of a [`WorkerKind`]: this binary answering with the worker
//! SDK's ordinary `serve` handler (the payload back, as `benches/enqueue.rs`
//! does), or Node or Python processes on the repository's SDKs.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use nanny::{EnqueueOptions, Event, Pool, Supervisor, WorkerId};
use serde_bytes::ByteBuf;
use tokio::runtime::Runtime;

use crate::bare_tokio::on;
use crate::report::Burst;
use crate::worker_kinds::WorkerKind;
use crate::workloads::{runtime, steady, SMALL, WARM_UP};

/// The nanny peer with workers of kind `K`.
#[derive(Debug)]
pub struct Nanny<K> {
    rt: Runtime,
    supervisor: Supervisor,
    /// The next kill's victim, found untimed (`Peer::aim`).
    aim: Option<Aim>,
    kind: PhantomData<K>,
}

/// A worker to SIGKILL, the workers before it, and the supervisor's
/// events from before the kill.
struct Aim {
    pid: nix::unistd::Pid,
    old: HashSet<WorkerId>,
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl std::fmt::Debug for Aim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aim")
            .field("pid", &self.pid)
            .field("old", &self.old)
            .finish_non_exhaustive()
    }
}

/// The worker side: every payload back, on a current-thread runtime.
pub fn serve_worker() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let worker = nanny_worker::connect().await?;
        worker.ready();
        worker
            .serve(|req| async move {
                let payload: ByteBuf = req.data()?;
                req.respond(&payload)?;
                Ok(())
            })
            .await
    });
    if let Err(e) = result {
        if !matches!(e, nanny_worker::Error::Disconnected) {
            eprintln!("nanny worker: {e}");
            std::process::exit(1);
        }
    }
}

/// Enqueues `concurrent` small requests at a time (no retries) until the
/// workers that answered include one that is not in `old`, and `want` in all.
async fn until_answered<K: WorkerKind>(supervisor: &Supervisor, old: &HashSet<WorkerId>, want: usize) {
    let payload = ByteBuf::from(vec![7u8; SMALL]);
    let mut seen = HashSet::new();
    while seen.len() < want {
        let asks =
            (0..want.max(2)).map(|_| supervisor.enqueue_with(&payload, EnqueueOptions::new().retries(0)));
        for answer in futures::future::join_all(asks).await.into_iter().flatten() {
            K::check(&answer, SMALL);
            if !old.contains(&answer.worker()) {
                seen.insert(answer.worker());
            }
        }
    }
}

impl<K: WorkerKind> crate::workloads::Peer for Nanny<K> {
    fn start(workers: usize) -> Self {
        let rt = runtime(K::CURRENT_THREAD);
        let supervisor = on(&rt, async move {
            let mut builder = Supervisor::builder();
            if let Some(window) = K::SPIN {
                builder = builder.spin_before_park(window);
            }
            let supervisor = builder
                .pool(Pool::default_pool(K::spec()).workers(workers))
                .restart_delay(Duration::ZERO)
                .max_restarts(u32::MAX)
                .start()
                .await
                .expect("supervisor starts");
            until_answered::<K>(&supervisor, &HashSet::new(), workers).await;
            supervisor
        });
        Self {
            rt,
            supervisor,
            aim: None,
            kind: PhantomData,
        }
    }

    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration> {
        let supervisor = self.supervisor.clone();
        on(&self.rt, async move {
            let payload = ByteBuf::from(vec![7u8; SMALL]);
            let ask = || async {
                let answer = supervisor.enqueue(&payload).await.expect("an answer");
                K::check(&answer, SMALL);
            };
            for _ in 0..WARM_UP {
                ask().await;
            }
            let (start, mut each) = (Instant::now(), Vec::with_capacity(100_000));
            while start.elapsed() < run_for {
                let t = Instant::now();
                ask().await;
                each.push(t.elapsed());
            }
            each
        })
    }

    fn burst(&mut self, size: usize, run_for: Duration) -> Burst {
        let supervisor = self.supervisor.clone();
        on(&self.rt, async move {
            let payload = ByteBuf::from(vec![7u8; size]);
            steady(run_for, |_| async {
                let answer = supervisor.enqueue(&payload).await.expect("an answer");
                K::check(&answer, size);
                answer.worker()
            })
            .await
        })
    }

    fn aim(&mut self) {
        let supervisor = self.supervisor.clone();
        self.aim = Some(on(&self.rt, async move {
            let health = supervisor.health().await.expect("health");
            Aim {
                pid: nix::unistd::Pid::from_raw(health[0].pid as i32),
                old: health.iter().map(|w| w.id).collect(),
                // Subscribed before the kill.
                events: Box::pin(supervisor.events()),
            }
        }));
    }

    fn kill_one(&mut self) {
        if self.aim.is_none() {
            self.aim();
        }
        let Aim { pid, old, mut events } = self.aim.take().expect("aimed");
        let supervisor = self.supervisor.clone();
        on(&self.rt, async move {
            nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).expect("SIGKILL a worker");
            // The probe starts once the replacement is online, so it
            // steals no CPU from its start.
            while let Some(event) = events.next().await {
                if matches!(event, Event::WorkerOnline { worker, .. } if !old.contains(&worker)) {
                    break;
                }
            }
            until_answered::<K>(&supervisor, &old, 1).await;
        });
    }

    fn worker_pids(&mut self) -> Vec<u32> {
        let supervisor = self.supervisor.clone();
        on(
            &self.rt,
            async move { supervisor.health().await.expect("health") },
        )
        .into_iter()
        .map(|w| w.pid)
        .collect()
    }

    fn stop(self) {
        let supervisor = self.supervisor;
        on(&self.rt, async move { supervisor.soft_kill().await });
    }
}
