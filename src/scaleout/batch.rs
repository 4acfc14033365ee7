//! Natural batching of backend calls: many tasks hand one item each to a
//! [`Batcher`] and wait for its own result; one runner ([`Batches::run`])
//! takes whatever is queued (at most a batch's worth) and makes one call
//! for all of it. While a call is out, new items queue up and become the
//! next batch, so the batch grows with the load and a lone item goes at
//! once: no timer, no added wait at low load.
//!
//! Used for the caller's publishing (on Redis one `MULTI`/`EXEC` a batch)
//! and the executor's completions (one fenced script a batch). A runner that has ended
//! answers nothing: [`Batcher::call`] then gives `None`.
//!
//! The queue holds at most [`QUEUED_BATCHES`] batches' worth. When it is
//! full, [`Batcher::call`] waits for room (backpressure, nothing dropped):
//! its caller is waiting for the result anyway. Its users are bounded
//! too: at most `max_queue` waiting publishes (the caller's ledger refuses more
//! with `QueueFull`) and as many completions as deliveries run here.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How many batches' worth of items may wait while a call is out.
pub(crate) const QUEUED_BATCHES: usize = 2;

/// One item and where its result goes.
type Slot<T, R> = (T, oneshot::Sender<R>);

/// The sending side: a cheap clone.
#[derive(Debug)]
pub(crate) struct Batcher<T, R> {
    tx: mpsc::Sender<Slot<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

/// The receiving side, for one runner.
#[derive(Debug)]
pub(crate) struct Batches<T, R> {
    rx: mpsc::Receiver<Slot<T, R>>,
    max: usize,
}

/// A batcher and its queue, at most `max` items a batch and
/// [`QUEUED_BATCHES`] batches queued.
pub(crate) fn batcher<T, R>(max: usize) -> (Batcher<T, R>, Batches<T, R>) {
    let max = max.max(1);
    let (tx, rx) = mpsc::channel(max * QUEUED_BATCHES);
    (Batcher { tx }, Batches { rx, max })
}

impl<T, R> Batcher<T, R> {
    /// Queues `item` (waiting for room while the queue is full) and waits
    /// for its result; `None` if the runner ended before it ran.
    pub(crate) async fn call(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).await.ok()?;
        rx.await.ok()
    }
}

impl<T, R> Batches<T, R> {
    /// Runs batches with `call` (one result per item, in order) until
    /// `end`; then runs what is still queued, and ends.
    pub(crate) async fn run<F, Fut>(mut self, end: &CancellationToken, mut call: F)
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        loop {
            let first = tokio::select! {
                first = self.rx.recv() => first,
                () = end.cancelled() => None,
            };
            let Some(first) = first else { break };
            self.batch(first, &mut call).await;
        }
        self.rx.close();
        while let Ok(first) = self.rx.try_recv() {
            self.batch(first, &mut call).await;
        }
    }

    /// `first` and whatever else is queued, up to `max`, in one call.
    async fn batch<F, Fut>(&mut self, first: Slot<T, R>, call: &mut F)
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        let mut slots = vec![first];
        while slots.len() < self.max {
            match self.rx.try_recv() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        let (items, senders): (Vec<T>, Vec<_>) = slots.into_iter().unzip();
        let results = call(items).await;
        debug_assert_eq!(results.len(), senders.len(), "one result per item");
        for (tx, r) in senders.into_iter().zip(results) {
            let _ = tx.send(r); // its caller may have stopped waiting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batcher;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn every_item_gets_its_own_result_in_batches_no_larger_than_max() {
        let (b, q) = batcher::<u32, u32>(4);
        let end = CancellationToken::new();
        let sizes = std::sync::Mutex::new(Vec::new());
        let runner = q.run(&end, |items| {
            sizes.lock().unwrap().push(items.len());
            async move { items.iter().map(|i| i * 10).collect() }
        });
        let calls = async {
            let got = futures::future::join_all((0..10).map(|i| b.call(i))).await;
            end.cancel();
            got
        };
        let ((), got) = tokio::join!(runner, calls);
        assert_eq!(got, (0..10).map(|i| Some(i * 10)).collect::<Vec<_>>());
        let sizes = sizes.into_inner().unwrap();
        assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 10);
    }

    #[tokio::test]
    async fn callers_beyond_the_queues_bound_wait_for_room_and_are_all_answered() {
        let (b, q) = batcher::<u32, u32>(1); // room for 2 queued items
        let end = CancellationToken::new();
        let calls = futures::future::join_all((0..7).map(|i| b.call(i)));
        let runner = q.run(&end, |items| async move { items.iter().map(|i| i + 1).collect() });
        let got = async {
            let got = calls.await;
            end.cancel();
            got
        };
        let ((), got) = tokio::join!(runner, got);
        assert_eq!(got, (1..8).map(Some).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn after_the_runner_ended_a_call_gets_none() {
        let (b, q) = batcher::<u32, u32>(4);
        let end = CancellationToken::new();
        end.cancel();
        q.run(&end, |items| async move { items }).await;
        assert_eq!(b.call(1).await, None);
    }
}
