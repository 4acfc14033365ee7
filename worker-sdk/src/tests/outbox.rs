//! The outbox's guarantees: the bound counts reservations, a reservation
//! always has room, slots come back, waiters wake, the reader takes in
//! order and ends when nothing more can come, and closing fails cleanly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc::error::TrySendError;

use super::TIMEOUT;
use crate::outbox::outbox;

/// Counts its drops: an item nobody will read must still be dropped.
#[derive(Debug)]
struct Item(u32, Arc<AtomicUsize>);

impl Drop for Item {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

fn numbers(batch: &VecDeque<Item>) -> Vec<u32> {
    batch.iter().map(|i| i.0).collect()
}

#[tokio::test]
async fn reservations_count_against_the_bound_and_always_have_room() {
    let drops = Arc::new(AtomicUsize::new(0));
    let item = |n| Item(n, Arc::clone(&drops));
    let (tx, rx) = outbox(4);
    let mut two = tx.try_reserve(2).unwrap();
    tx.try_send(item(1)).unwrap();
    tx.try_send(item(2)).unwrap();
    // 2 queued + 2 reserved: full for everyone else.
    assert!(matches!(
        tx.try_send(item(9)),
        Err(TrySendError::Full(Item(9, _)))
    ));
    assert!(matches!(tx.try_reserve(1), Err(TrySendError::Full(()))));
    // The reservation's sends need no room beyond their own.
    two.send(item(3));
    two.send(item(4));
    let mut batch = VecDeque::new();
    assert!(rx.take(&mut batch).await);
    assert_eq!(numbers(&batch), [1, 2, 3, 4], "in order, in one take");
    assert!(rx.try_take(&mut VecDeque::new()).is_none(), "nothing more yet");
    drop(two);
    tx.try_reserve(4).expect("all room is back once taken");
}

#[tokio::test]
async fn an_unused_reservation_gives_its_slots_back_and_wakes_a_waiter() {
    let (tx, _rx) = outbox::<u32>(2);
    let held = tx.try_reserve(2).unwrap();
    let mut waiting = Box::pin(tx.reserve(1));
    assert!(waiting.as_mut().now_or_never().is_none(), "full: it waits");
    drop(held);
    let got = tokio::time::timeout(TIMEOUT, waiting).await.expect("woken");
    assert!(got.is_some());
}

#[tokio::test]
async fn a_waiting_sender_gets_room_when_the_reader_takes() {
    let (tx, rx) = outbox(1);
    tx.try_send(1).unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await.is_ok() }
    });
    tokio::task::yield_now().await;
    let mut batch = VecDeque::new();
    assert!(rx.take(&mut batch).await);
    assert_eq!(batch, [1]);
    assert!(waiting.await.unwrap(), "queued once there was room");
    batch.clear();
    assert!(rx.take(&mut batch).await);
    assert_eq!(batch, [2]);
}

#[tokio::test]
async fn the_reader_is_woken_by_a_send_and_ends_when_nothing_more_can_come() {
    let (tx, rx) = outbox(8);
    let mut reservation = tx.try_reserve(1).unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut batch = VecDeque::new();
        while rx.take(&mut batch).await {
            seen.extend(batch.drain(..));
            rx.idle(&mut batch);
        }
        seen
    });
    tokio::task::yield_now().await;
    tx.try_send(1).unwrap();
    drop(tx);
    tokio::task::yield_now().await;
    assert!(!reader.is_finished(), "a reservation can still send");
    reservation.send(2);
    drop(reservation);
    let seen = tokio::time::timeout(TIMEOUT, reader)
        .await
        .expect("ends")
        .unwrap();
    assert_eq!(seen, [1, 2], "what was queued is read before the end");
}

#[tokio::test]
async fn a_closed_outbox_refuses_cleanly_and_drops_what_it_held() {
    let drops = Arc::new(AtomicUsize::new(0));
    let item = |n| Item(n, Arc::clone(&drops));
    let (tx, rx) = outbox(2);
    let mut reservation = tx.try_reserve(1).unwrap();
    tx.try_send(item(1)).unwrap();
    let mut waiting = Box::pin(tx.reserve(1));
    assert!(waiting.as_mut().now_or_never().is_none(), "full: it waits");
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the queued item is dropped");
    let got = tokio::time::timeout(TIMEOUT, waiting).await.expect("woken");
    assert!(got.is_none(), "a waiting reservation fails");
    assert!(matches!(
        tx.try_send(item(2)),
        Err(TrySendError::Closed(Item(2, _)))
    ));
    assert!(matches!(tx.try_reserve(1), Err(TrySendError::Closed(()))));
    let back = tx.send(item(3)).await.expect_err("the reader is gone");
    assert_eq!(back.0, 3, "given back");
    drop(back);
    reservation.send(item(4)); // neither blocks nor panics: dropped
    assert_eq!(drops.load(Ordering::SeqCst), 4);
}
