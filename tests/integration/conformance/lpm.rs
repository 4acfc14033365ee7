//! The load-process-manager layer: `sdk/node/test/lpm-worker.js`, a
//! worker.js as an LPM user wrote it with only its `require` changed to
//! `nanny-worker/lpm`, answers, emits, and runs its `softKill` callback.

use nanny::Event;

use super::langs::{node_spec, Lang, Pool};
use crate::support::conformance::Value;
use crate::support::*;

/// The custom events named `name` seen so far.
fn custom(events: &Events, name: &str) -> Vec<nanny::events::CustomEvent> {
    events
        .snapshot()
        .into_iter()
        .filter_map(|e| match e {
            Event::Custom(c) if c.name() == name => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_lpm_worker_answers_emits_and_runs_its_soft_kill() {
    guard(async {
        let spec = node_spec("sdk/node/test/lpm-worker.js");
        let pool = Pool::start_spec(spec, Lang::Node, 2, |b| b).await;
        let events = Events::collect(&pool.sup);
        let hello = Value::map([("hello", Value::str("world"))]);
        let answer: Value = pool
            .sup
            .enqueue(&hello)
            .await
            .expect("answered")
            .data()
            .expect("a value");
        let expected = Value::map([("dummy", Value::str("world")), ("got", hello)]);
        assert_eq!(answer, expected, "req.respond after req.ack");
        let count = Value::map([("hello", Value::str("count"))]);
        let ongoing: Value = pool
            .sup
            .enqueue(&count)
            .await
            .expect("answered")
            .data()
            .expect("a value");
        let one = Value::map([("ongoing", Value::Uint(1))]);
        assert_eq!(ongoing, one, "worker.requests() counts the request");
        let counted = eventually("the counted event", || async { custom(&events, "counted").pop() }).await;
        assert_eq!(
            counted.data::<Value>().expect("a value"),
            one,
            "worker.emit's payload"
        );
        pool.sup.broadcast("ping", "over here").await.expect("broadcast");
        let bytes = nanny_worker::protocol::encode_payload("over here").expect("encodes");
        let pongs = eventually("both pongs", || async {
            let pongs = custom(&events, "pong");
            (pongs.len() >= 2).then_some(pongs)
        })
        .await;
        assert!(
            pongs.iter().all(|p| p.raw() == bytes),
            "worker.on(event).then: {pongs:?}"
        );
        let workers: Vec<_> = health(&pool.sup).await.iter().map(|h| h.id).collect();
        pool.sup.soft_kill().await;
        let byes = eventually("both byes", || async {
            let byes = custom(&events, "bye");
            (byes.len() >= 2).then_some(byes)
        })
        .await;
        assert_eq!(byes.len(), 2, "each softKill callback emitted before done()");
        assert!(byes
            .iter()
            .all(|b| b.data::<String>().ok().as_deref() == Some("soft")));
        for id in workers {
            let exit = exit_of(&events, id).await;
            assert_eq!(
                (exit.status.code, exit.forced),
                (Some(0), false),
                "{id} exits 0 after done()"
            );
        }
    })
    .await;
}
