//! Rolling reloads and deploys under constant load: no request fails and
//! no connection is refused while every worker is replaced.

use std::collections::BTreeSet;

use nanny::events::StopReason;
use nanny::manage::StartFailure;
use nanny::{Error, Event, Pool, WorkerHealth};

use crate::support::conns::{echo_pool, listener_addr};
use crate::support::load::{Load, Tally};
use crate::support::{all_ready, builder, guard, health, worker_spec, Events};

fn ids(h: &[WorkerHealth]) -> BTreeSet<u64> {
    h.iter().map(|w| w.id.get()).collect()
}

fn names(h: &[WorkerHealth]) -> BTreeSet<String> {
    h.iter().map(|w| w.name.clone()).collect()
}

/// Served by both the workers before and the workers after.
fn spans(
    seen: &std::collections::BTreeMap<u64, usize>,
    before: &BTreeSet<u64>,
    after: &BTreeSet<u64>,
) -> bool {
    seen.keys().any(|w| before.contains(w)) && seen.keys().any(|w| after.contains(w))
}

fn assert_nothing_lost(t: &Tally) {
    assert!(
        t.failed.is_empty(),
        "{} requests failed: {:?}",
        t.failed.len(),
        &t.failed[..t.failed.len().min(5)]
    );
    assert!(
        t.refused.is_empty(),
        "{} connections refused or broken: {:?}",
        t.refused.len(),
        &t.refused[..t.refused.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_every_pool_under_load_fails_no_request_and_refuses_no_connection() {
    guard(async {
        let sup = echo_pool(2)
            .pool(Pool::new("jobs", worker_spec("normal")).workers(1))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let addr = listener_addr(&sup).await;
        let before = health(&sup).await;
        let web = Load::start(&sup, None, 4, Some(addr), 3);
        let jobs = Load::start(&sup, Some("jobs"), 2, None, 0);
        web.more(200).await;

        sup.reload(None).await.expect("reload");
        let after = health(&sup).await;
        web.more(200).await;
        jobs.more(50).await;
        let (web, jobs) = (web.stop().await, jobs.stop().await);

        assert_nothing_lost(&web);
        assert_nothing_lost(&jobs);
        let (old, new) = (ids(&before), ids(&after));
        assert!(old.is_disjoint(&new), "every worker was replaced: {old:?} → {new:?}");
        assert_eq!(names(&before), names(&after), "replacements keep their names");
        assert!(spans(&web.answers, &old, &new), "requests before and after: {:?}", web.answers);
        assert!(spans(&web.connections, &old, &new), "connections before and after: {:?}", web.connections);
        assert!(spans(&jobs.answers, &old, &new), "jobs before and after: {:?}", jobs.answers);

        let seen = events.snapshot();
        let at = |pred: &dyn Fn(&Event) -> bool| seen.iter().position(pred);
        let default = at(&|e| matches!(e, Event::PoolReloaded { pool } if pool == "default")).expect("default reloaded");
        let jobs = at(&|e| matches!(e, Event::PoolReloaded { pool } if pool == "jobs")).expect("jobs reloaded");
        let cluster = at(&|e| matches!(e, Event::ClusterReloaded)).expect("cluster reloaded");
        assert!(default < cluster && jobs < cluster);
        for w in &old {
            assert!(
                seen.iter().any(|e| matches!(e, Event::WorkerExited { worker, expected: true, reason: Some(StopReason::Reload), .. } if worker.get() == *w)),
                "worker {w} left by the reload"
            );
        }
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_pool_then_reload_deploys_a_new_spec_under_load() {
    guard(async {
        let sup = builder(2).start().await.expect("start");
        let before = ids(&health(&sup).await);
        let load = Load::start(&sup, None, 4, None, 0);
        load.more(100).await;

        let release_2 = worker_spec("normal").env("TEST_RELEASE", "2");
        sup.update_pool("default", release_2).await.expect("update");
        sup.reload(Some("default")).await.expect("reload");
        let after = ids(&health(&sup).await);
        load.more(100).await;
        let t = load.stop().await;

        assert_nothing_lost(&t);
        assert!(before.is_disjoint(&after));
        assert!(spans(&t.answers, &before, &after), "{:?}", t.answers);
        assert!(
            t.env.contains_key(&None) && t.env.contains_key(&Some("2".into())),
            "{:?}",
            t.env
        );
        // Every worker now runs the new spec.
        let now = Load::start(&sup, None, 2, None, 0);
        now.more(20).await;
        let t = now.stop().await;
        assert_eq!(t.env.keys().collect::<Vec<_>>(), vec![&Some("2".to_string())]);
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_that_does_not_start_stops_the_reload_and_the_old_workers_serve_on() {
    guard(async {
        let sup = builder(2).start().await.expect("start");
        let events = Events::collect(&sup);
        let before = health(&sup).await;
        sup.update_pool("default", worker_spec("crash-on-start"))
            .await
            .expect("update");

        let load = Load::start(&sup, None, 2, None, 0);
        match sup.reload(Some("default")).await {
            Err(Error::StartFailed {
                worker,
                reason: StartFailure::Exited(status),
            }) => {
                assert_eq!(worker, "default:01", "the first slot's replacement");
                assert_eq!(status.code, Some(3));
            }
            other => panic!("expected StartFailed, got {other:?}"),
        }
        events
            .wait_for("ReloadFailed", |e| matches!(e, Event::ReloadFailed { .. }))
            .await;
        load.more(50).await;
        assert_nothing_lost(&load.stop().await);
        let now = all_ready(&sup, 2).await;
        assert_eq!(ids(&now), ids(&before), "the old workers still serve");
        assert!(now.iter().all(|w| !w.retiring));
        assert!(
            !events
                .snapshot()
                .iter()
                .any(|e| matches!(e, Event::RestartBudgetExhausted { .. })),
            "a failed replacement costs no budget"
        );

        // An added worker that does not start takes its slot with it.
        assert!(matches!(
            sup.add_worker("default").await,
            Err(Error::StartFailed { .. })
        ));
        let i = sup.inspect().await.expect("inspect");
        assert_eq!(i.pools[0].slots.len(), 2);

        // Back to a good spec, the reload goes through.
        sup.update_pool("default", worker_spec("normal"))
            .await
            .expect("update");
        sup.reload(Some("default")).await.expect("reload");
        assert!(ids(&health(&sup).await).is_disjoint(&ids(&before)));
        sup.soft_kill().await;
    })
    .await
}
