//! The router's hot path: one dispatch (`pick` + `upsert` of the picked
//! worker with one more request in flight) and one answer (`upsert` of a
//! worker with one fewer), as the supervisor task does per request, at 8,
//! 64 and 512 ready workers; and the sticky routing's rendezvous pick
//! (`nanny::sticky::owner`) over as many slot names.
//!
//! ```text
//! cargo bench --bench router_pick
//! ```
//!
//! Each iteration is one whole cycle (1 pick + 2 upserts); answers arrive
//! on a pseudo-random busy worker, so in-flight counts drift as they do
//! under load and the ordered set really reorders. `pick` alone is measured
//! too.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use nanny::router::Router;

const SIZES: [u64; 3] = [8, 64, 512];

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    router(&mut c);
    sticky(&mut c);
    c.final_summary();
}

/// A router of `n` workers with some in flight each and distinct RSS, and
/// their in-flight counts.
fn loaded(n: u64) -> (Router, Vec<u32>) {
    let mut router = Router::new();
    let mut in_flight = Vec::with_capacity(n as usize);
    for id in 0..n {
        let f = (id % 8) as u32;
        router.upsert(id, f, rss(id));
        in_flight.push(f);
    }
    (router, in_flight)
}

/// A stable, distinct RSS per worker (20–84 MiB).
fn rss(id: u64) -> u64 {
    (20 << 20) + (id * 7919 % 64) * (1 << 20)
}

fn router(c: &mut Criterion) {
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        group.bench_with_input(BenchmarkId::new("pick_upsert_cycle", n), &n, |b, &n| {
            let (mut router, mut in_flight) = loaded(n);
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            b.iter(|| {
                // Dispatch: the least pressured worker gets one more request.
                let w = router.pick(None).expect("a candidate");
                in_flight[w as usize] += 1;
                router.upsert(w, in_flight[w as usize], rss(w));
                // Answer: some worker with work in flight finishes one.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut a = seed % n;
                while in_flight[a as usize] == 0 {
                    a = (a + 1) % n;
                }
                in_flight[a as usize] -= 1;
                router.upsert(a, in_flight[a as usize], rss(a));
                black_box(w)
            });
        });
        group.bench_with_input(BenchmarkId::new("pick", n), &n, |b, &n| {
            let (router, _) = loaded(n);
            b.iter(|| black_box(router.pick(black_box(None))));
        });
    }
    group.finish();
}

/// `nanny::sticky::owner`: the rendezvous pick of one key's slot among `n`
/// slot names, hashing every name on each call (the public helper; the
/// supervisor keeps the names' hashes and redoes them only when the owners
/// change, so this is an upper bound of its per-request cost).
fn sticky(c: &mut Criterion) {
    let mut group = c.benchmark_group("sticky");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let names: Vec<String> = (1..=n).map(|i| format!("api:{i:02}")).collect();
        group.bench_with_input(BenchmarkId::new("owner", n), &names, |b, names| {
            let mut key = 0u64;
            b.iter(|| {
                key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let owner = nanny::sticky::owner(&key.to_le_bytes(), names.iter().map(String::as_str));
                black_box(owner.map(str::len))
            });
        });
    }
    group.finish();
}
