//! Messages between workers, through the supervisor: exactly the right
//! recipients, in order per sender, with their metas; a recipient that
//! does not read loses its oldest messages (a bounded mailbox), not the
//! supervisor's memory; confirmations fire and re-arm; the counters they
//! leave (`cluster_info`, `reset_stats` and older workers: `messaging_cluster`).

use std::collections::BTreeMap;

use nanny::{EnqueueOptions, Event, Pool, Supervisor, WorkerCounters, WorkerHealth, WorkerId};

use crate::support::mail::{Got, Report, To, REPORT, REPORTED};
use crate::support::*;

/// Pools `x` and `y` of one worker each and `g` of two.
pub(crate) async fn cluster() -> Supervisor {
    let b = timers(Supervisor::builder())
        .pool(Pool::new("x", worker_spec("normal")).workers(1))
        .pool(Pool::new("y", worker_spec("normal")).workers(1))
        .pool(Pool::new("g", worker_spec("normal")).workers(2));
    let sup = b.start().await.expect("start");
    all_ready(&sup, 4).await;
    sup
}

pub(crate) async fn to_pool<T: serde::de::DeserializeOwned>(sup: &Supervisor, pool: &str, cmd: &Cmd) -> T {
    let r = sup
        .enqueue_with(cmd, EnqueueOptions::new().pool(pool))
        .await
        .unwrap_or_else(|e| panic!("{cmd:?} to {pool}: {e}"));
    r.data().expect("decodes")
}

pub(crate) fn publish(to: To, first: u64, count: u64) -> Cmd {
    Cmd::Publish {
        to,
        first,
        count,
        pad: 0,
    }
}

pub(crate) fn by_name<'a>(health: &'a [WorkerHealth], name: &str) -> &'a WorkerHealth {
    health
        .iter()
        .find(|h| h.name == name)
        .expect("a worker of that name")
}

/// Every worker's [`Report`] once `done` holds for them (asked again and
/// again: a report may overtake messages still in a mailbox).
async fn reports(
    sup: &Supervisor,
    events: &Events,
    workers: usize,
    done: impl Fn(&BTreeMap<WorkerId, Report>) -> bool,
) -> BTreeMap<WorkerId, Report> {
    eventually("the reports", || async {
        let nonce = fresh_key("report");
        sup.broadcast(REPORT, &nonce).await.expect("broadcast");
        let got = eventually("every worker's report", || async {
            let mut all = BTreeMap::new();
            for e in events.snapshot() {
                if let Event::Custom(c) = e {
                    match c.data::<Report>() {
                        Ok(r) if c.name() == REPORTED && r.nonce == nonce => drop(all.insert(c.worker(), r)),
                        _ => {}
                    }
                }
            }
            (all.len() == workers).then_some(all)
        })
        .await;
        done(&got).then_some(got)
    })
    .await
}

/// `(handler, sender name) → numbers`, in arrival order.
fn streams(got: &[Got]) -> BTreeMap<(String, String), Vec<u64>> {
    let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for g in got {
        out.entry((g.handler.clone(), g.name.clone()))
            .or_default()
            .push(g.n);
    }
    out
}

fn key(handler: &str, from: &str) -> (String, String) {
    (handler.to_owned(), from.to_owned())
}

#[tokio::test]
async fn messages_reach_exactly_their_recipients_in_order_with_their_metas() {
    guard(async {
        let sup = cluster().await;
        let events = Events::collect(&sup);
        let health = health(&sup).await;
        let (x, g2) = (by_name(&health, "x:01"), by_name(&health, "g:02"));
        // Two senders at once: x to everyone, its group, and two privates
        // (by name and by id); y to everyone.
        let sends = [
            ("x", publish(To::Public, 0, 20)),
            ("x", publish(To::Group("g".into()), 100, 20)),
            ("x", publish(To::Name("y:01".into()), 200, 20)),
            ("x", publish(To::Id(g2.id.get()), 300, 20)),
            ("y", publish(To::Public, 1000, 20)),
            // To nobody: counted on the sender, delivered to no one.
            ("x", publish(To::Name("y:09".into()), 400, 2)),
            ("x", publish(To::Id(999_999), 500, 3)),
        ];
        let tasks: Vec<_> = sends
            .iter()
            .map(|(pool, cmd)| {
                let (sup, pool, cmd) = (sup.clone(), pool.to_string(), cmd.clone());
                tokio::spawn(async move { to_pool::<u64>(&sup, &pool, &cmd).await })
            })
            .collect();
        join_all(tasks).await;

        let expected: BTreeMap<&str, usize> = [("x:01", 20), ("y:01", 40), ("g:01", 60), ("g:02", 80)].into();
        let id_of = |name: &str| by_name(&health, name).id;
        let all = reports(&sup, &events, 4, |r| {
            expected.iter().all(|(name, n)| r[&id_of(name)].got.len() >= *n)
        })
        .await;
        let seq = |a: u64| (a..a + 20).collect::<Vec<u64>>();
        let want: BTreeMap<&str, BTreeMap<(String, String), Vec<u64>>> = [
            ("x:01", [(key("public", "y:01"), seq(1000))].into()),
            (
                "y:01",
                [
                    (key("public", "x:01"), seq(0)),
                    (key("private", "x:01"), seq(200)),
                ]
                .into(),
            ),
            (
                "g:01",
                [
                    (key("public", "x:01"), seq(0)),
                    (key("group", "x:01"), seq(100)),
                    (key("public", "y:01"), seq(1000)),
                ]
                .into(),
            ),
            (
                "g:02",
                [
                    (key("public", "x:01"), seq(0)),
                    (key("group", "x:01"), seq(100)),
                    (key("private", "x:01"), seq(300)),
                    (key("public", "y:01"), seq(1000)),
                ]
                .into(),
            ),
        ]
        .into();
        for (name, streams_wanted) in &want {
            let got = &all[&id_of(name)].got;
            assert_eq!(&streams(got), streams_wanted, "what {name} received");
            for g in got {
                let sender = by_name(&health, &g.name);
                assert_eq!(
                    (g.from, g.pid, g.pool.as_str()),
                    (sender.id.get(), sender.pid, sender.pool.as_str())
                );
            }
        }

        // The counters, as the supervisor shows them and as x reads its own.
        let now = crate::support::health(&sup).await;
        let counters = |name: &str| by_name(&now, name).counters;
        let cx = counters("x:01");
        assert_eq!(
            (cx.public_sent, cx.group_sent, cx.private_sent, cx.undelivered),
            (20, 20, 45, 5)
        );
        assert_eq!((cx.public_received, cx.received()), (20, 20));
        let c2 = counters("g:02");
        assert_eq!(
            (
                c2.public_received,
                c2.group_received,
                c2.private_received,
                c2.dropped
            ),
            (40, 20, 20, 0)
        );
        let own: WorkerCounters = to_pool(&sup, "x", &Cmd::Stats).await;
        assert_eq!((own.sent(), own.undelivered), (cx.sent(), 5));
        assert_eq!(x.counters.sent(), 0, "nothing sent before");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_recipient_that_does_not_read_loses_its_oldest_messages_not_the_supervisors_memory() {
    guard(async {
        let b = timers(Supervisor::builder())
            .unhealthy_timeout(None) // its blocked runtime sends no heartbeats
            .pool(Pool::new("slow", worker_spec("normal")).workers(1))
            .pool(Pool::new("x", worker_spec("normal")).workers(1));
        let sup = b.start().await.expect("start");
        all_ready(&sup, 2).await;
        let events = Events::collect(&sup);
        let unblock =
            std::env::temp_dir().join(format!("nanny-unblock-{}-{}", std::process::id(), fresh_key("m")));
        let block = Cmd::BlockUntil(unblock.to_string_lossy().into_owned());
        let blocked = {
            let sup = sup.clone();
            tokio::spawn(async move { to_pool::<u64>(&sup, "slow", &block).await })
        };
        let slow = eventually("the blocking request is in flight", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.pool == "slow" && h.in_flight == 1)
        })
        .await;
        // Far more than its socket buffer and mailbox hold (~3 MiB).
        const SENT: u64 = 3000;
        let cmd = Cmd::Publish {
            to: To::Name("slow:01".into()),
            first: 0,
            count: SENT,
            pad: 1024,
        };
        assert_eq!(to_pool::<u64>(&sup, "x", &cmd).await, SENT);
        let dropped = eventually("the slow worker's mailbox drops", || async {
            let h = health(&sup).await;
            let c = by_name(&h, "slow:01").counters;
            (c.private_received == SENT && c.dropped > 0).then_some(c.dropped)
        })
        .await;
        assert!(dropped < SENT);
        // The supervisor serves the others meanwhile.
        assert_eq!(
            to_pool::<String>(&sup, "x", &Cmd::Echo("still here".into())).await,
            "still here"
        );
        std::fs::write(&unblock, b"").expect("the unblock file");
        assert_eq!(blocked.await.unwrap(), slow.id.get());
        let _ = std::fs::remove_file(&unblock);

        // Once it reads again: every message not dropped, once, in order,
        // ending with the newest (the oldest were dropped).
        let all = reports(&sup, &events, 2, |r| {
            r[&slow.id].got.last().is_some_and(|g| g.n == SENT - 1)
        })
        .await;
        let got: Vec<u64> = all[&slow.id].got.iter().map(|g| g.n).collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        assert_eq!(
            got.len() as u64,
            SENT - dropped,
            "every message not dropped arrived"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn confirmations_fire_with_the_confirmers_metas_then_re_arm() {
    guard(async {
        let sup = cluster().await;
        let events = Events::collect(&sup);
        let health = health(&sup).await;
        let id_of = |name: &str| by_name(&health, name).id;
        let listen = Cmd::ListenConfirmations {
            n: 2,
            identifier: "warm".into(),
        };
        to_pool::<u64>(&sup, "x", &listen).await;
        let confirm = |pool: &'static str, identifier: &'static str| {
            let sup = sup.clone();
            async move { to_pool::<u64>(&sup, pool, &Cmd::Confirm(identifier.into())).await }
        };
        let fired = |n: usize| move |r: &BTreeMap<WorkerId, Report>| r[&id_of("x:01")].fired.len() >= n;
        // Another identifier is not counted; one confirmation is not enough.
        confirm("y", "cold").await;
        confirm("y", "warm").await;
        // A barrier: x's mailbox is first in, first out, so once x has
        // y's private message it has seen y's confirmations before it.
        to_pool::<u64>(&sup, "y", &publish(To::Name("x:01".into()), 7000, 1)).await;
        let first = reports(&sup, &events, 4, |r| !r[&id_of("x:01")].got.is_empty()).await;
        assert!(
            first[&id_of("x:01")].fired.is_empty(),
            "fired after one confirmation"
        );
        confirm("g", "warm").await;
        let once = reports(&sup, &events, 4, fired(1)).await;
        let f = &once[&id_of("x:01")].fired;
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].identifier, "warm");
        assert_eq!(f[0].from[0], id_of("y:01").get());
        assert!(f[0].from[1] == id_of("g:01").get() || f[0].from[1] == id_of("g:02").get());
        // Re-armed: two more fire it again, and no one else counted them.
        confirm("y", "warm").await;
        confirm("y", "warm").await;
        let twice = reports(&sup, &events, 4, fired(2)).await;
        let f = &twice[&id_of("x:01")].fired;
        assert_eq!(f[1].from, vec![id_of("y:01").get(); 2]);
        for name in ["y:01", "g:01", "g:02"] {
            assert!(twice[&id_of(name)].fired.is_empty(), "{name} has no listener");
        }
        let h = crate::support::health(&sup).await;
        let cx = by_name(&h, "x:01").counters;
        assert_eq!((cx.confirmations_received, cx.confirmations_completed), (5, 2));
        assert_eq!(by_name(&h, "y:01").counters.confirmations_sent, 4);
        sup.soft_kill().await;
    })
    .await;
}
