//! The cluster seen from a worker (`cluster_info`), the per-worker counters
//! and `reset_stats`, and a worker of an older protocol among messaging ones.

use nanny::{manage::Conflict, ClusterInfo, Error, Event, Pool, Supervisor, WorkerCounters, WorkerHealth};

use super::messaging::{by_name, cluster, publish, to_pool};
use crate::support::mail::To;
use crate::support::*;

#[tokio::test]
async fn cluster_info_lists_every_pool_with_its_workers() {
    guard(async {
        let sup = cluster().await;
        let info: ClusterInfo = to_pool(&sup, "g", &Cmd::ClusterInfo).await;
        let health = health(&sup).await;
        assert_eq!(info.supervisor_pid, std::process::id());
        let names: Vec<&str> = info.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["x", "y", "g"]);
        for pool in &info.pools {
            let mut want: Vec<(u64, &str, u32)> = (health.iter())
                .filter(|h| h.pool == pool.name)
                .map(|h| (h.id.get(), h.name.as_str(), h.pid))
                .collect();
            want.sort_unstable();
            let got: Vec<(u64, &str, u32)> = (pool.workers.iter())
                .map(|m| (m.id, m.name.as_str(), m.pid))
                .collect();
            assert_eq!(got, want, "pool {}", pool.name);
        }
        assert_eq!(info.pool("g").map(|p| p.workers.len()), Some(2));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn reset_stats_zeroes_a_running_workers_counters_only() {
    guard(async {
        let sup = cluster().await;
        to_pool::<u64>(&sup, "x", &publish(To::Public, 0, 3)).await;
        let sent = |h: &[WorkerHealth]| by_name(h, "x:01").counters.public_sent;
        assert_eq!(sent(&health(&sup).await), 3);
        sup.reset_stats("x:01").await.expect("reset");
        let h = health(&sup).await;
        assert_eq!(by_name(&h, "x:01").counters, WorkerCounters::default());
        // By id too; the others' counters are untouched.
        assert_eq!(by_name(&h, "y:01").counters.public_received, 3);
        sup.reset_stats(by_name(&h, "y:01").id)
            .await
            .expect("reset by id");
        assert_eq!(by_name(&health(&sup).await, "y:01").counters.public_received, 0);
        assert!(matches!(
            sup.reset_stats("x:07").await,
            Err(Error::UnknownWorker { .. })
        ));
        sup.stop_worker("g:02").await.expect("stop");
        assert!(matches!(
            sup.reset_stats("g:02").await,
            Err(Error::Conflict {
                reason: Conflict::Stopped,
                ..
            })
        ));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_of_an_older_protocol_gets_no_messages_and_serves_on() {
    guard(async {
        let old = worker_spec("raw-no-caps").env("TEST_RAW_VERSION", "3");
        let b = timers(Supervisor::builder())
            .pool(Pool::new("x", worker_spec("normal")).workers(1))
            .pool(Pool::new("y", worker_spec("normal")).workers(1))
            .pool(Pool::new("old", old).workers(1));
        let sup = b.start().await.expect("start");
        all_ready(&sup, 3).await;
        let events = Events::collect(&sup);
        to_pool::<u64>(&sup, "x", &publish(To::Public, 0, 5)).await;
        to_pool::<u64>(&sup, "x", &publish(To::Group("old".into()), 0, 5)).await;
        to_pool::<u64>(&sup, "x", &publish(To::Name("old:01".into()), 0, 5)).await;
        let h = health(&sup).await;
        assert_eq!(by_name(&h, "y:01").counters.public_received, 5);
        assert_eq!(by_name(&h, "old:01").counters.received(), 0);
        assert_eq!(by_name(&h, "x:01").counters.undelivered, 5, "the private ones");
        // It would exit on a message: it is still the same process, serving.
        assert_eq!(
            to_pool::<String>(&sup, "old", &Cmd::Echo("hi".into())).await,
            "hi"
        );
        assert_eq!(events.count(|e| matches!(e, Event::WorkerExited { .. })), 0);
        sup.soft_kill().await;
    })
    .await;
}
