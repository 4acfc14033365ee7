//! Each pool's counters on their own (`pool_stats`, `PoolInfo::stats`),
//! and the supervisor's as their sum.

use std::time::Duration;

use nanny::{EnqueueOptions, Error, LatencyHistogram, Pool, Stats, Supervisor};

use crate::support::*;

/// `enqueued = answered + failed + cancelled + queued + in_flight`.
fn balanced(s: &Stats) -> bool {
    s.enqueued == s.answered + s.failed + s.cancelled + s.queued as u64 + s.in_flight as u64
}

/// The field-by-field sum of `a` and `b`.
fn sum(a: &Stats, b: &Stats) -> Stats {
    let mut s = a.clone();
    s.enqueued += b.enqueued;
    s.answered += b.answered;
    s.failed += b.failed;
    s.rejected += b.rejected;
    s.refused += b.refused;
    s.cancelled += b.cancelled;
    s.timeouts += b.timeouts;
    s.retries += b.retries;
    s.late_answers += b.late_answers;
    s.restarts += b.restarts;
    s.protocol_errors += b.protocol_errors;
    s.queued += b.queued;
    s.in_flight += b.in_flight;
    for (n, m) in s.latency.counts.iter_mut().zip(b.latency.counts) {
        *n += m;
    }
    s.latency.sum += b.latency.sum;
    s.latency.count += b.latency.count;
    s
}

/// The histogram counts every answer once: its buckets sum to `count`,
/// which is `answered`.
fn latency_counts_answers(s: &Stats) -> bool {
    let h = &s.latency;
    h.count == s.answered
        && h.counts.iter().sum::<u64>() == h.count
        && (h.count == 0 || h.sum > Duration::ZERO)
}

#[tokio::test]
async fn each_pool_counts_only_its_own_requests_and_workers() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("a", worker_spec("normal")).workers(2))
                .pool(Pool::new("b", worker_spec("normal")).workers(1)),
        )
        .start()
        .await
        .expect("start");
        let to = |pool: &str| EnqueueOptions::new().pool(pool).retries(0);
        for _ in 0..3 {
            sup.enqueue_with(&Cmd::Whoami, to("a")).await.expect("a answers");
        }
        sup.enqueue(&Cmd::Whoami).await.expect("the default pool is a");
        // b: one answer, one timeout (answered late), one crash (a restart).
        sup.enqueue_with(&Cmd::Whoami, to("b")).await.expect("b answers");
        let late = to("b").timeout(Some(Duration::from_millis(50)));
        let timed_out = sup.enqueue_with(&Cmd::Sleep(300), late).await;
        assert!(matches!(timed_out, Err(Error::Timeout { .. })), "{timed_out:?}");
        wait_until("b's late answer", || async {
            sup.pool_stats("b").await.unwrap().late_answers == 1
        })
        .await;
        let crashed = sup.enqueue_with(&Cmd::Exit(1), to("b")).await;
        assert!(matches!(crashed, Err(Error::WorkerExited { .. })), "{crashed:?}");
        // a: a caller that goes away (its worker answers late).
        let gone = spawn_enqueue(&sup, Cmd::Sleep(200));
        wait_until("a runs it", || async { stats(&sup).await.in_flight == 1 }).await;
        gone.abort();
        // Unknown pool: refused, in the total only.
        let unknown = sup.enqueue_with(&Cmd::Whoami, to("nope")).await;
        assert!(matches!(unknown, Err(Error::UnknownPool { .. })), "{unknown:?}");

        let pool = |name: &'static str| {
            let sup = sup.clone();
            async move { sup.pool_stats(name).await.expect("a known pool") }
        };
        wait_until("a's cancel and late answer, b's restart are counted", || async {
            let (a, b) = (pool("a").await, pool("b").await);
            a.cancelled == 1 && a.late_answers == 1 && b.restarts == 1
        })
        .await;
        wait_until("b is back", || async { all_ready_now(&sup).await }).await;
        let (a, b, total) = (pool("a").await, pool("b").await, stats(&sup).await);
        assert_eq!(
            (
                a.enqueued,
                a.answered,
                a.failed,
                a.cancelled,
                a.timeouts,
                a.restarts,
                a.late_answers
            ),
            (5, 4, 0, 1, 0, 0, 1),
            "{a:?}"
        );
        assert_eq!(
            (
                b.enqueued,
                b.answered,
                b.failed,
                b.cancelled,
                b.timeouts,
                b.restarts,
                b.late_answers
            ),
            (3, 1, 2, 0, 1, 1, 1),
            "{b:?}"
        );
        assert_eq!((a.refused, b.refused, total.refused), (0, 0, 1));
        assert!(
            balanced(&a) && balanced(&b) && balanced(&total),
            "{a:?} {b:?} {total:?}"
        );
        assert!(
            latency_counts_answers(&a) && latency_counts_answers(&b) && latency_counts_answers(&total),
            "{a:?} {b:?} {total:?}"
        );
        let mut both = sum(&a, &b);
        both.refused += 1; // the unknown pool's
        assert_eq!(both, total);

        let info = sup.inspect().await.unwrap();
        let of = |name: &str| info.pools.iter().find(|p| p.name == name).unwrap().stats.clone();
        assert_eq!((of("a"), of("b")), (a, b));
        let err = sup.pool_stats("nope").await.expect_err("no such pool");
        assert!(
            matches!(&err, Error::UnknownPool { pool } if pool == "nope"),
            "{err:?}"
        );
        within("soft kill", sup.soft_kill()).await;
    })
    .await;
}

#[tokio::test]
async fn the_latency_histogram_counts_each_answer_from_enqueue_to_answer() {
    guard(async {
        let sup = start(2).await;
        for _ in 0..5 {
            sup.enqueue(&Cmd::Whoami).await.expect("an answer");
        }
        for _ in 0..3 {
            sup.enqueue(&Cmd::Sleep(30)).await.expect("a slow answer");
        }
        let s = stats(&sup).await;
        assert!(latency_counts_answers(&s), "{s:?}");
        assert_eq!(s.latency.count, 8, "{s:?}");
        // A 30 ms handler cannot land in a bucket of 25 ms or less.
        let slow: u64 = (LatencyHistogram::BOUNDS.iter().zip(s.latency.counts))
            .filter(|(bound, _)| **bound > Duration::from_millis(25))
            .map(|(_, n)| n)
            .sum::<u64>()
            + s.latency.counts[LatencyHistogram::BOUNDS.len()];
        assert!(slow >= 3, "{:?}", s.latency);
        assert!(s.latency.sum >= Duration::from_millis(90), "{:?}", s.latency);
        let (last_bound, total) = s.latency.cumulative().last().expect("buckets");
        assert_eq!((last_bound, total), (None, 8));
        within("soft kill", sup.soft_kill()).await;
    })
    .await;
}

/// Every slot of every pool has a ready worker.
async fn all_ready_now(sup: &Supervisor) -> bool {
    let h = health(sup).await;
    h.len() == 3 && h.iter().all(|w| w.state == nanny::WorkerState::Ready)
}
