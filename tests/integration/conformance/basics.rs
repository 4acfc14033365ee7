//! Requests and answers, cancel, busy/ready, broadcast and emit.

use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event, WorkerState};

use super::langs::{Lang, Pool};
use crate::support::conformance::{Op, Value, CANCELLED, ECHO_PREFIX, UNKNOWN_OP};
use crate::support::*;

super::conformance! {
    request_response: [rust, node, python];
    in_flight_counts_the_asking_request: [rust, node, python];
    cancel_on_timeout_reaches_the_handler: [rust, node, python];
    busy_worker_gets_no_request: [rust, node, python];
    broadcast_comes_back_as_an_event: [rust, node, python];
}

/// A value of every MessagePack kind a JavaScript or Python decoder keeps
/// as it is (integers below 2^53, `str` map keys that are not numbers).
fn every_kind() -> Value {
    Value::map([
        ("text", Value::str("héllo, wörld")),
        ("small", Value::Uint(7)),
        ("large", Value::Uint(1 << 40)),
        ("negative", Value::Int(-300)),
        ("float", Value::Float(1.5)),
        ("bin", Value::Bin(vec![0, 1, 254, 255])),
        (
            "list",
            Value::Array(vec![Value::Nil, Value::Bool(true), Value::Bool(false)]),
        ),
        (
            "nested",
            Value::map([("empty", Value::map([])), ("none", Value::Array(vec![]))]),
        ),
    ])
}

/// Echo of every kind of value, sleep, a handler's error, an unknown op,
/// and who answered: the worker's own host pid and language.
async fn request_response(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let data = every_kind();
    let echoed: Value = pool
        .ask(&Op::Echo { data: data.clone() })
        .await
        .data()
        .expect("a value");
    assert_eq!(echoed, data, "echo");
    let slept: String = pool.ask(&Op::Sleep { ms: 20 }).await.data().expect("a string");
    assert_eq!(slept, "slept");
    let unblocked: String = pool.ask(&Op::Block { ms: 20 }).await.data().expect("a string");
    assert_eq!(unblocked, "unblocked");
    let fail = Op::Fail {
        kind: "teapot".into(),
        message: "short and stout".into(),
    };
    assert_eq!(
        pool.ask_err(&fail).await,
        ("teapot".into(), "short and stout".into())
    );
    let unknown = Value::map([("op", Value::str("no-such-op"))]);
    assert_eq!(
        pool.ask_err(&unknown).await,
        (UNKNOWN_OP.into(), "no-such-op".into())
    );
    let (resp, me) = pool.whoami().await;
    let h = health(&pool.sup).await;
    assert_eq!(me.lang, lang.name());
    assert_eq!(
        me.pid, h[0].pid,
        "the hello pid is the host pid of the process started"
    );
    assert_eq!(resp.worker(), h[0].id);
    assert_eq!(me.in_flight, 1, "whoami counts itself");
    pool.sup.soft_kill().await;
}

/// `whoami` counts a request waiting in the same worker; the waiting one,
/// dropped by its caller, is cancelled.
async fn in_flight_counts_the_asking_request(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let events = Events::collect(&pool.sup);
    let tag = format!("dropped-{}", lang.name());
    let sup = pool.sup.clone();
    let op = Op::WaitCancel { tag: tag.clone() };
    let waiting = tokio::spawn(async move { sup.enqueue(&op).await });
    // Assigned first, so received first: frames keep their order.
    wait_until("the waiting request is assigned", || async {
        health(&pool.sup).await[0].in_flight == 1
    })
    .await;
    let (_, me) = pool.whoami().await;
    assert_eq!(me.in_flight, 2, "the waiting request and whoami");
    waiting.abort();
    wait_for_cancelled(&events, &tag).await;
    pool.sup.soft_kill().await;
}

/// A request that times out is cancelled at the worker: its handler sees
/// the cancel (and emits `cancelled`).
async fn cancel_on_timeout_reaches_the_handler(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let events = Events::collect(&pool.sup);
    let tag = format!("timeout-{}", lang.name());
    let options = EnqueueOptions::new()
        .timeout(Some(Duration::from_millis(200)))
        .retries(0);
    let result = pool
        .sup
        .enqueue_with(&Op::WaitCancel { tag: tag.clone() }, options)
        .await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    wait_for_cancelled(&events, &tag).await;
    wait_until("the cancelled attempt leaves the worker's in_flight", || async {
        let h = health(&pool.sup).await;
        h[0].heartbeat.as_ref().is_some_and(|b| b.in_flight == 0) && h[0].in_flight == 0
    })
    .await;
    let (_, me) = pool.whoami().await;
    assert_eq!(me.in_flight, 1, "only whoami");
    pool.sup.soft_kill().await;
}

async fn wait_for_cancelled(events: &Events, tag: &str) {
    events
        .wait_for(&format!("the `cancelled` event of {tag}"), |e| {
            matches!(e, Event::Custom(c) if c.name() == CANCELLED && c.data::<String>().ok().as_deref() == Some(tag))
        })
        .await;
}

/// A worker that said `Busy` gets no request while another is ready; it
/// says `Ready` again by itself.
async fn busy_worker_gets_no_request(lang: Lang) {
    let pool = Pool::start(lang, 2, |b| b).await;
    let events = Events::collect(&pool.sup);
    let busy = pool.ask(&Op::BusyFor { ms: 1_500 }).await;
    let busy_id = busy.worker();
    assert_eq!(busy.data::<String>().expect("a string"), "busy");
    // `Busy` came before the answer on the same socket.
    let went_busy = |e: &Event| matches!(e, Event::WorkerState { worker, to: WorkerState::Busy, .. } if *worker == busy_id);
    events.wait_for("the busy state", went_busy).await;
    let back = |e: &Event| matches!(e, Event::WorkerState { worker, from: WorkerState::Busy, to: WorkerState::Ready } if *worker == busy_id);
    let answers = join_all((0..8).map(|_| spawn_enqueue_op(&pool, Op::Whoami)).collect()).await;
    for answer in answers {
        let answer = answer.expect("whoami");
        if answer.worker() == busy_id {
            // Only once it said Ready again (the router saw that first).
            events.wait_for("the busy worker is ready again", back).await;
        }
    }
    events.wait_for("the busy worker says Ready again", back).await;
    all_ready(&pool.sup, 2).await;
    pool.sup.soft_kill().await;
}

fn spawn_enqueue_op(pool: &Pool, op: Op) -> tokio::task::JoinHandle<Result<nanny::Response, Error>> {
    let sup = pool.sup.clone();
    tokio::spawn(async move { sup.enqueue(&op).await })
}

/// A broadcast reaches every worker, which emits it back under
/// `echo:<event>` with the payload's very bytes.
async fn broadcast_comes_back_as_an_event(lang: Lang) {
    let pool = Pool::start(lang, 2, |b| b).await;
    let events = Events::collect(&pool.sup);
    let payload = (
        format!("to every {} worker", lang.name()),
        42u32,
        vec![-1i64, 65_536],
    );
    let bytes = nanny_worker::protocol::encode_payload(&payload).expect("encodes");
    pool.sup.broadcast("hello", &payload).await.expect("broadcast");
    let name = format!("{ECHO_PREFIX}hello");
    let echoes = eventually("both workers' echoes", || async {
        let echoes: Vec<_> = events
            .snapshot()
            .into_iter()
            .filter_map(|e| match e {
                Event::Custom(c) if c.name() == name => Some(c),
                _ => None,
            })
            .collect();
        (echoes.len() >= 2).then_some(echoes)
    })
    .await;
    let mut from: Vec<_> = echoes.iter().map(|c| c.worker()).collect();
    from.sort();
    from.dedup();
    assert_eq!(from.len(), 2, "one echo from each worker: {echoes:?}");
    for echo in &echoes {
        assert_eq!(echo.raw(), bytes, "the payload's bytes");
    }
    pool.sup.soft_kill().await;
}
