//! `update_pool_config`: a running pool's whole definition replaced (its
//! settings as well as its spec), acting on the workers started from then
//! on and on the rules read as things happen; what cannot change live is
//! refused with the key it names, and a refusal changes nothing.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{ConfigError, EnqueueOptions, Error, Event, Pool, RestartPolicy, Supervisor};

use crate::support::*;

fn pool(n: usize) -> Pool {
    Pool::default_pool(worker_spec("normal")).workers(n)
}

#[tokio::test]
async fn a_new_max_requests_recycles_the_reloaded_workers() {
    guard(async {
        let sup = timers(Supervisor::builder().pool(pool(1))).start().await.expect("start");
        let events = Events::collect(&sup);
        let retired = |e: &Event| {
            matches!(
                e,
                Event::WorkerRetiring {
                    reason: StopReason::MaxRequests,
                    ..
                }
            )
        };
        for i in 0..5u64 {
            sup.enqueue(&Cmd::Double(i)).await.expect("served");
        }
        assert_eq!(events.count(retired), 0, "no max_requests yet");

        sup.update_pool_config(pool(1).max_requests(3, 0))
            .await
            .expect("update");
        sup.reload(Some("default")).await.expect("reload");
        let fresh = all_ready(&sup, 1).await[0].id;
        for i in 0..3u64 {
            let resp = sup.enqueue(&Cmd::Double(i)).await.expect("served");
            assert_eq!(resp.worker(), fresh);
        }
        let got = events
            .wait_for("the reloaded worker retires at 3", |e| {
                matches!(e, Event::WorkerRetiring { worker, reason: StopReason::MaxRequests, .. } if *worker == fresh)
            })
            .await;
        assert!(retired(&got));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_new_restart_policy_acts_on_the_next_exit() {
    guard(async {
        let sup = timers(Supervisor::builder().pool(pool(2)))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        sup.update_pool_config(pool(2).restart(RestartPolicy::No).max_restarts(1))
            .await
            .expect("update");
        let info = sup.inspect().await.expect("inspect");
        assert_eq!(info.pools[0].restart, RestartPolicy::No);

        let err = sup.enqueue(&Cmd::Exit(3)).await.unwrap_err();
        let Error::WorkerExited { worker, .. } = err else {
            panic!("got {err:?}")
        };
        exit_of(&events, worker).await;
        // A later request's event follows every event the exit caused.
        sup.enqueue_with(&Cmd::Emit("after".into()), EnqueueOptions::new())
            .await
            .expect("the other worker serves on");
        events
            .wait_for("after", |e| matches!(e, Event::Custom(c) if c.name() == "after"))
            .await;
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerRestarting { .. })),
            0,
            "restart = no: the slot stays empty"
        );
        assert_eq!(health(&sup).await.len(), 1);
        sup.ready().await.expect("an abandoned slot is not waited for");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn what_cannot_change_live_is_refused_by_its_key_and_changes_nothing() {
    guard(async {
        let sup = timers(Supervisor::builder().pool(pool(2)))
            .start()
            .await
            .expect("start");
        let not_live = |r: Result<(), Error>| match r {
            Err(Error::Config(ConfigError::NotLive { pool, key })) => {
                assert_eq!(pool, "default");
                key
            }
            other => panic!("expected NotLive, got {other:?}"),
        };
        let plain = Pool::default_pool(worker_spec("normal").plain()).workers(2);
        assert_eq!(not_live(sup.update_pool_config(plain).await), "plain");
        let spec = worker_spec("normal").plain();
        assert_eq!(not_live(sup.update_pool("default", spec).await), "plain");
        let ids = pool(2).logical_ids([7, 8]);
        assert_eq!(not_live(sup.update_pool_config(ids).await), "logical_ids");

        // Checked as at start.
        assert!(matches!(
            sup.update_pool_config(pool(2).restart(RestartPolicy::No).max_requests(0, 0))
                .await,
            Err(Error::Config(ConfigError::ZeroMaxRequests { .. }))
        ));
        let early = pool(2).unhealthy_timeout(Some(Duration::from_millis(1)));
        assert!(matches!(
            sup.update_pool_config(early).await,
            Err(Error::Config(ConfigError::PoolSetting { .. }))
        ));
        assert!(matches!(
            sup.update_pool_config(Pool::new("nope", worker_spec("normal")))
                .await,
            Err(Error::UnknownPool { .. })
        ));
        let info = sup.inspect().await.expect("inspect");
        assert_eq!(info.pools[0].restart, RestartPolicy::Always, "nothing changed");
        sup.reload(Some("default")).await.expect("the pool still reloads");
        assert_eq!(all_ready(&sup, 2).await.len(), 2);
        sup.soft_kill().await;
    })
    .await;
}
