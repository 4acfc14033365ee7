//! The queue: order, the bound, waiting for room, closing.

use nanny_worker::protocol::ToWorker;

use super::*;
use crate::worker::link::Outgoing;

fn frame() -> Outgoing {
    Outgoing::Frame(ToWorker::SoftKill)
}

#[tokio::test]
async fn frames_come_out_in_order_in_one_take_and_the_bound_holds() {
    let (tx, rx) = outbox(3);
    for _ in 0..3 {
        tx.try_send(frame()).unwrap();
    }
    assert!(matches!(tx.try_send(frame()), Err(TrySendError::Full(_))));
    let mut batch = VecDeque::new();
    assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
    assert_eq!(batch.len(), 3);
    assert_eq!(
        rx.try_take(&mut VecDeque::new(), &mut BytesMut::new()),
        None,
        "nothing more yet"
    );
    batch.clear();
    rx.idle(&mut batch);
    tx.try_send(frame()).unwrap();
}

#[tokio::test]
async fn try_send_with_builds_only_when_there_is_room() {
    let (tx, _rx) = outbox(1);
    let mut built = 0;
    tx.try_send_with(|| {
        built += 1;
        frame()
    })
    .unwrap();
    let full = tx.try_send_with(|| {
        built += 1;
        frame()
    });
    assert!(matches!(full, Err(TrySendError::Full(()))));
    assert_eq!(built, 1);
}

#[tokio::test]
async fn push_goes_past_the_bound_and_ready_then_drain_each_hands_all_in_order() {
    let (tx, rx) = outbox::<u8>(1);
    tx.try_send(1).unwrap();
    assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    assert!(tx.push(3), "past the bound");
    assert!(rx.ready().await);
    let mut got = Vec::new();
    rx.drain_each(|n| got.push(n));
    assert_eq!(got, [1, 3]);
    tx.try_send(4).unwrap();
    drop(tx);
    assert!(rx.ready().await, "what was queued is still handed over");
    rx.drain_each(drop);
    assert!(!rx.ready().await, "nothing queued and no sender left");

    let (tx, rx) = outbox::<u8>(1);
    drop(rx);
    assert!(!tx.push(1), "the reader has gone");
}

#[tokio::test]
async fn a_waiting_sender_gets_room_when_the_writer_takes() {
    let (tx, rx) = outbox(1);
    tx.try_send(frame()).unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(frame()).await.is_ok() }
    });
    tokio::task::yield_now().await;
    let mut batch = VecDeque::new();
    assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
    assert!(waiting.await.unwrap(), "queued once there was room");
    batch.clear();
    assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
    assert_eq!(batch.len(), 1);
}

#[tokio::test]
async fn the_writer_ends_when_every_sender_has_gone_and_senders_see_it_gone() {
    let (tx, rx) = outbox(4);
    let tx2 = tx.clone();
    tx.try_send(frame()).unwrap();
    drop(tx);
    drop(tx2);
    let mut batch = VecDeque::new();
    assert!(
        rx.take(&mut batch, &mut BytesMut::new()).await,
        "what was queued is still written"
    );
    batch.clear();
    assert!(!rx.take(&mut batch, &mut BytesMut::new()).await);

    let (tx, rx) = outbox(4);
    drop(rx);
    assert!(tx.is_closed());
    assert!(matches!(tx.try_send(frame()), Err(TrySendError::Closed(_))));
    assert!(tx.send(frame()).await.is_err());
    assert!(Sender::<Outgoing>::closed().is_closed());
}
