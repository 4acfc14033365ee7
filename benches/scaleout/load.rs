//! The loads of the scale-out bench, the same through either queue: tiny
//! echo requests through the ordinary `enqueue` API, every answer checked.
//!
//! * [`rate`]: requests per second with [`OUTSTANDING`] in flight;
//! * [`latency`]: p50 and p99 with one in flight;
//! * [`answered`]: the load with a record of when each request was
//!   answered, by which host and at which attempt (the reclaim figure).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nanny::{EnqueueOptions, Supervisor};

use crate::cmd::Cmd;

/// Requests in flight for the rate.
pub(crate) const OUTSTANDING: usize = 256;
/// The echo payload: one byte of text.
const TEXT: &str = "x";

/// One request's options: a generous deadline, and retries for a reclaim
/// (which counts as an attempt).
fn options() -> EnqueueOptions {
    EnqueueOptions::new().deadline(Duration::from_secs(60)).retries(3)
}

/// One echo request; panics on anything but its own echo.
async fn echo(sup: &Supervisor) -> nanny::Response {
    let r = sup
        .enqueue_with(&Cmd::Echo(TEXT.to_owned()), options())
        .await
        .unwrap_or_else(|e| panic!("an echo request failed: {e}"));
    assert_eq!(
        r.data::<String>().expect("a string answer"),
        TEXT,
        "the echo of the payload"
    );
    r
}

/// `requests` echoes with [`OUTSTANDING`] in flight: requests per second.
pub(crate) async fn rate(sup: &Supervisor, requests: usize) -> f64 {
    let started = Instant::now();
    let n = futures::stream::iter(0..requests)
        .map(|_| echo(sup))
        .buffer_unordered(OUTSTANDING)
        .count()
        .await;
    assert_eq!(n, requests);
    requests as f64 / started.elapsed().as_secs_f64()
}

/// `requests` echoes one after the other: (p50, p99).
pub(crate) async fn latency(sup: &Supervisor, requests: usize) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        echo(sup).await;
        took.push(t.elapsed());
    }
    took.sort_unstable();
    (quantile(&took, 0.50), quantile(&took, 0.99))
}

/// The `q` quantile of sorted `xs` (nearest rank).
pub(crate) fn quantile<T: Copy>(xs: &[T], q: f64) -> T {
    let rank = ((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// One answered request of [`answered`].
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    pub(crate) at: Instant,
    pub(crate) host: String,
    pub(crate) attempt: u32,
}

/// Echoes with [`OUTSTANDING`] in flight until `until` says stop (asked
/// after each answer), then waits for those in flight; every answer
/// recorded.
pub(crate) async fn answered(sup: &Supervisor, until: impl Fn() -> bool) -> Vec<Answered> {
    let stop = AtomicBool::new(false);
    let more = std::iter::from_fn(|| (!stop.load(Ordering::Relaxed)).then_some(()));
    let mut load = futures::stream::iter(more)
        .map(|()| echo(sup))
        .buffer_unordered(OUTSTANDING);
    let mut out = Vec::new();
    while let Some(r) = load.next().await {
        out.push(Answered {
            at: Instant::now(),
            host: r.host().unwrap_or("-").to_owned(),
            attempt: r.attempt(),
        });
        if until() {
            stop.store(true, Ordering::Relaxed);
        }
    }
    out
}
