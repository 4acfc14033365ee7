//! 256 workers on a small machine: they all start and get ready, each
//! serves a request held open until a broadcast releases it (so the
//! broadcast reaches all 256), the pool shrinks to one, and a soft kill
//! ends the rest. The caller then checks that every process was reaped
//! and the descriptors are back to where they were.

use std::time::{Duration, Instant};

use nanny::{Pool, Supervisor, DEFAULT_POOL};

use crate::support::*;

/// The workers.
const WORKERS: usize = 256;

/// Runs the case; returns the pid of every worker it spawned.
pub(crate) async fn many_workers() -> Vec<u32> {
    let began = Instant::now();
    let pool = Pool::default_pool(worker_spec("normal"))
        .workers(WORKERS)
        .concurrency(1);
    // A generous start: 256 processes on two cores, in a debug build.
    let sup = timers(Supervisor::builder().pool(pool))
        .start_timeout(Duration::from_secs(60))
        .spawn()
        .expect("spawn");
    let events = Events::collect(&sup);
    sup.ready().await.expect("256 workers ready");
    let pids: Vec<u32> = all_ready(&sup, WORKERS).await.iter().map(|w| w.pid).collect();
    let ready = began.elapsed();

    // One request on each (one at a time each), open until the broadcast.
    let key = fresh_key("many");
    let held = gated(&sup, WORKERS, &key);
    load(&sup, WORKERS, 0).await;
    release(&sup, &key).await;
    let answers: Vec<_> = join_all(held)
        .await
        .into_iter()
        .map(|r| r.expect("served"))
        .collect();
    assert_eq!(per_worker(&answers).len(), WORKERS, "one answer from each worker");
    let served = began.elapsed();

    sup.resize(DEFAULT_POOL, 1).await.expect("resize to 1");
    all_ready(&sup, 1).await;
    assert_eq!(stats(&sup).await.restarts, 0, "no worker was replaced");
    within("soft_kill", sup.soft_kill()).await;
    drop(sup);
    // 256 workers' events overrun a collector on two busy cores: the pids
    // come from `health`, and only the stream's end is waited for.
    wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
    eprintln!(
        "256 workers: ready after {ready:?}, all served after {served:?}, reaped after {:?}",
        began.elapsed()
    );
    pids
}
