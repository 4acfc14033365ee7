//! `Supervisor::enqueue` end to end: supervisor → socketpair → worker
//! process → back, with real worker processes.
//!
//! ```text
//! cargo bench --bench enqueue
//! cargo bench --bench enqueue -- --warm-up-time 1 --measurement-time 5   # quicker
//! ```
//!
//! * `round_trip/one_outstanding`: one request at a time, 2 workers, 100 B
//!   payload. Time per request = round-trip latency: criterion reports the
//!   mean, and the bench then prints per-request p50/p90/p99 (warm-up
//!   included) on a line of its own.
//! * `throughput/256_outstanding/{100 B, 64 KiB}`: a steady 256 requests in
//!   flight over 2 workers; criterion reports requests/s (100 B) or payload
//!   bytes/s one way (64 KiB; the same bytes also travel back).
//!
//! Runtimes: the supervisor side (and the caller) runs on a **multi-thread**
//! tokio runtime with the default worker threads (one per core); each worker
//! runs on a current-thread runtime, as a one-process-per-core worker
//! should. `round_trip/one_outstanding_current_thread` repeats the first
//! figure with a current-thread supervisor runtime, for comparison.
//!
//! Workers are this same bench binary (self-fork): `main` checks
//! [`nanny_worker::is_worker`] before criterion sees any argument and, in a
//! worker, echoes each payload (a `serde_bytes::ByteBuf`) back. No other
//! binary has to be built first.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use nanny::{Pool, Supervisor, WorkerSpec};
use serde_bytes::ByteBuf;
use tokio::runtime::Runtime;

mod support;
const WORKERS: usize = 2;
const OUTSTANDING: usize = 256;
const SMALL: usize = 100;
const LARGE: usize = 64 * 1024;

fn main() {
    if nanny_worker::is_worker() {
        support::serve_echo();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    round_trip(&mut c);
    throughput(&mut c);
    c.final_summary();
}

/// Starts a supervisor with [`WORKERS`] echo workers on `rt`.
fn start(rt: &Runtime) -> Supervisor {
    rt.block_on(
        Supervisor::builder()
            .pool(Pool::default_pool(WorkerSpec::current_exe().expect("current exe")).workers(WORKERS))
            .start(),
    )
    .expect("supervisor starts")
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn round_trip(c: &mut Criterion) {
    let payload = ByteBuf::from(vec![7u8; SMALL]);
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));

    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (name, rt) in [
        ("one_outstanding", multi_thread()),
        ("one_outstanding_current_thread", current_thread),
    ] {
        let supervisor = start(&rt);
        // Criterion reports the mean per request of each sample; the
        // per-request percentiles (warm-up included) are printed after it.
        let each = RefCell::new(Vec::new());
        group.bench_function(BenchmarkId::new(name, "100 B"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (supervisor, payload, each) = (&supervisor, &payload, &each);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let response = supervisor.enqueue(payload).await.expect("answer");
                        let took = t.elapsed();
                        black_box(response.raw().len());
                        total += took;
                        each.borrow_mut().push(took);
                    }
                    total
                }
            });
        });
        rt.block_on(supervisor.soft_kill());
        print_percentiles(&format!("round_trip/{name}/100 B"), &mut each.into_inner());
    }
    group.finish();
}

/// Prints per-request latency percentiles of `each`.
fn print_percentiles(name: &str, each: &mut [Duration]) {
    if each.is_empty() {
        return;
    }
    each.sort_unstable();
    let at = |q: f64| each[((each.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: per request p50 {:.1?} p90 {:.1?} p99 {:.1?} max {:.1?} ({} requests)",
        at(0.5),
        at(0.9),
        at(0.99),
        each[each.len() - 1],
        each.len()
    );
}

fn throughput(c: &mut Criterion) {
    let rt = multi_thread();
    let supervisor = start(&rt);
    let mut group = c.benchmark_group("throughput");
    // Every sample runs the same number of requests, so each sample pays the
    // pipeline's fill and drain once and no sample is dominated by it.
    group.sampling_mode(SamplingMode::Flat);
    for (label, size, unit) in [
        ("100 B", SMALL, Throughput::Elements(1)),
        ("64 KiB", LARGE, Throughput::Bytes(LARGE as u64)),
    ] {
        let payload = ByteBuf::from(vec![7u8; size]);
        group.throughput(unit);
        group.bench_function(BenchmarkId::new("256_outstanding", label), |b| {
            // `iters` requests with a steady OUTSTANDING in flight.
            b.to_async(&rt).iter_custom(|iters| {
                let supervisor = supervisor.clone();
                let payload = payload.clone();
                async move {
                    let start = Instant::now();
                    futures::stream::iter(0..iters)
                        .map(|_| supervisor.enqueue(&payload))
                        .buffer_unordered(OUTSTANDING)
                        .for_each(|response| {
                            let response = response.expect("answer");
                            assert_eq!(response.raw().len(), encoded_len(size));
                            std::future::ready(())
                        })
                        .await;
                    start.elapsed()
                }
            });
        });
    }
    group.finish();
    rt.block_on(supervisor.soft_kill());
}

/// MessagePack size of a `bin` of `len` bytes: the answer must be the echo.
fn encoded_len(len: usize) -> usize {
    match len {
        0..=0xff => len + 2,
        0x100..=0xffff => len + 3,
        _ => len + 5,
    }
}
