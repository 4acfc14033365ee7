//! The soak's switch and report: how long the chaos runs ([`pace`]) and
//! the figures RELIABILITY.md asks for ([`report`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nanny::{LatencyHistogram, Stats};

use crate::tally::Tally;

/// Waits out the chaos: until `CHAOS_REQUESTS` enqueues have begun, or
/// for `CHAOS_SECS` seconds, or else for `default`.
pub(crate) async fn pace(tally: &Tally, default: Duration) {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")))
    };
    let Some(requests) = number("CHAOS_REQUESTS") else {
        let secs = number("CHAOS_SECS").map_or(default, Duration::from_secs);
        tokio::time::sleep(secs).await;
        return;
    };
    let begun = Instant::now();
    while tally.started.load(Ordering::SeqCst) < requests {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("chaos: {requests} enqueues begun in {:.1?}", begun.elapsed());
}

/// The soak's figures: retries by attempt, latency quantiles (upper bounds
/// of the supervisor's histogram buckets), the longest answer, and this
/// process's peak and final RSS (the supervisor runs in it, with the
/// callers).
pub(crate) fn report(tally: &Tally, stats: &Stats) -> String {
    let h = &stats.latency;
    format!(
        "soak: answers by attempt {:?}; latency p50 <= {:?}, p99 <= {:?}, max {:?}; \
         process RSS peak {} KiB, now {} KiB",
        tally.attempts.lock().unwrap(),
        quantile(h, 0.50),
        quantile(h, 0.99),
        Duration::from_micros(tally.max_us.load(Ordering::Relaxed)),
        status_kib("VmHWM"),
        status_kib("VmRSS"),
    )
}

/// The upper bound of the bucket that holds the `q` quantile (`None`: above
/// the last bound).
fn quantile(h: &LatencyHistogram, q: f64) -> Option<Duration> {
    let want = (h.count as f64 * q).ceil() as u64;
    h.cumulative()
        .find(|&(_, n)| n >= want)
        .and_then(|(bound, _)| bound)
}

/// A `/proc/self/status` figure in KiB.
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/self/status"))
}
