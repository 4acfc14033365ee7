//! Messaging against the fake supervisor: publishes go out as `Publish`
//! frames, messages reach their handlers, confirmations are counted and
//! re-armed, queries are answered by id.

use tokio::sync::mpsc;

use super::*;
use crate::Message;

fn meta(id: u64) -> MessageMeta {
    MessageMeta {
        id,
        name: format!("api:{id:02}"),
        pid: 1000 + id as u32,
        pool: "api".into(),
    }
}

fn message(kind: MessageKind, from: u64, data: &(impl Serialize + ?Sized)) -> ToWorker {
    ToWorker::Message {
        kind,
        meta: meta(from),
        data: encode_payload(data).unwrap(),
    }
}

#[tokio::test]
async fn publishes_are_frames_with_their_recipients() {
    let (worker, mut fake) = start().await;
    worker.publish_public(&1u8).unwrap();
    worker.publish_group("images", &2u8).unwrap();
    worker.publish_private("images:02", &3u8).unwrap();
    worker.publish_private(9u64, &4u8).unwrap();
    worker.emit_confirmation("warm").unwrap();
    let want = [
        (Recipients::Public, encode_payload(&1u8).unwrap()),
        (Recipients::Group("images".into()), encode_payload(&2u8).unwrap()),
        (
            Recipients::Private("images:02".into()),
            encode_payload(&3u8).unwrap(),
        ),
        (
            Recipients::Private(WorkerAddr::Id(9)),
            encode_payload(&4u8).unwrap(),
        ),
        (Recipients::Confirmation, encode_payload("warm").unwrap()),
    ];
    for (to, data) in want {
        assert_eq!(fake.next().await, FromWorker::Publish { to, data });
    }
    let too_big = vec![0u8; 64 * 1024];
    assert!(matches!(
        worker.publish_public(&serde_bytes::Bytes::new(&too_big)),
        Err(Error::TooLarge { .. })
    ));
}

#[tokio::test]
async fn messages_reach_the_handlers_of_their_kind_with_their_meta() {
    let (worker, mut fake) = start().await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(&str, Message)>();
    for (name, kind) in [
        ("public", MessageKind::Public),
        ("group", MessageKind::Group),
        ("private", MessageKind::Private),
    ] {
        let tx = tx.clone();
        let f = move |m: Message| drop(tx.send((name, m)));
        match kind {
            MessageKind::Public => worker.on_public(f),
            MessageKind::Group => worker.on_group(f),
            _ => worker.on_private(f),
        }
    }
    fake.send(message(MessageKind::Group, 3, "g")).await;
    fake.send(message(MessageKind::Private, 4, "p")).await;
    fake.send(message(MessageKind::Public, 5, "all")).await;
    for (handler, from, data) in [("group", 3, "g"), ("private", 4, "p"), ("public", 5, "all")] {
        let (name, m) = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(
            (name, m.meta(), m.data::<String>().unwrap().as_str()),
            (handler, &meta(from), data)
        );
    }
}

#[tokio::test]
async fn a_confirmation_listener_fires_at_n_with_the_metas_then_re_arms() {
    let (worker, mut fake) = start().await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<MessageMeta>>();
    worker.on_confirmation(2, "warm", move |metas| drop(tx.send(metas)));
    for from in [1, 2, 3, 4] {
        fake.send(message(MessageKind::Confirmation, 9, "cold")).await;
        fake.send(message(MessageKind::Confirmation, from, "warm")).await;
    }
    for pair in [[1, 2], [3, 4]] {
        let metas = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(metas, vec![meta(pair[0]), meta(pair[1])]);
        let done = FromWorker::Confirmed {
            identifier: "warm".into(),
        };
        assert_eq!(fake.next().await, done);
    }
    assert!(rx.try_recv().is_err(), "fired only twice");
}

#[tokio::test]
async fn queries_are_answered_by_id() {
    let (worker, mut fake) = start().await;
    let w = worker.clone();
    let asked = tokio::spawn(async move { (w.cluster_info().await, w.stats().await) });
    let FromWorker::Query { id: first, query } = fake.next().await else {
        panic!("expected a query");
    };
    assert_eq!(query, Query::ClusterInfo);
    let info = ClusterInfo {
        supervisor_pid: 4242,
        pools: vec![PoolMembers {
            name: "api".into(),
            workers: vec![Member {
                id: 7,
                name: "api:01".into(),
                pid: 77,
            }],
        }],
    };
    // An answer nobody asked for is dropped.
    let stray = ToWorker::QueryAnswer {
        id: first + 100,
        answer: Answer::Stats(WorkerCounters::default()),
    };
    fake.send(stray).await;
    let answer = Answer::ClusterInfo(info.clone());
    fake.send(ToWorker::QueryAnswer { id: first, answer }).await;
    let FromWorker::Query { id: second, query } = fake.next().await else {
        panic!("expected a query");
    };
    assert_eq!(query, Query::Stats);
    let counters = WorkerCounters {
        public_sent: 3,
        ..Default::default()
    };
    let answer = Answer::Stats(counters);
    fake.send(ToWorker::QueryAnswer { id: second, answer }).await;
    let (got_info, got_stats) = tokio::time::timeout(TIMEOUT, asked).await.unwrap().unwrap();
    assert_eq!(got_info.unwrap(), info);
    assert_eq!(got_stats.unwrap().public_sent, 3);
    drop(fake);
    assert!(matches!(worker.cluster_info().await, Err(Error::Disconnected)));
}
