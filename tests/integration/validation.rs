//! Health and pool settings that make no sense are refused before any
//! worker is spawned.

use std::time::Duration;

use nanny::{Backoff, Pool, StartError, Supervisor};

use crate::support::*;

#[tokio::test]
async fn invalid_health_and_pool_settings_are_refused_before_any_spawn() {
    guard(async {
        let marker = "validation";
        let spec = || worker_spec("normal").env("NANNY_TEST_MARKER", marker);
        let pool = || Pool::default_pool(spec());
        let ms = Duration::from_millis;
        let backoff = |initial, multiplier, max| Backoff {
            initial,
            multiplier,
            max,
            reset_after: Duration::from_secs(30),
        };
        let cases: Vec<(&str, nanny::Builder)> = vec![
            (
                "ids and count disagree",
                Supervisor::builder().pool(pool().workers(2).logical_ids([1, 2, 3])),
            ),
            (
                "duplicate ids",
                Supervisor::builder().pool(pool().logical_ids([4, 4])),
            ),
            ("zero workers", Supervisor::builder().pool(pool().workers(0))),
            (
                "no logical ids",
                Supervisor::builder().pool(pool().logical_ids([])),
            ),
            (
                "missing executable",
                Supervisor::builder().pool(Pool::default_pool(nanny::WorkerSpec::new(
                    "/nonexistent/nanny-worker",
                ))),
            ),
            (
                "unhealthy_timeout equal to pulse",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .pulse(ms(500))
                    .unhealthy_timeout(Some(ms(500))),
            ),
            (
                "unhealthy_timeout under pulse",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .pulse(ms(500))
                    .unhealthy_timeout(Some(ms(100))),
            ),
            (
                "backoff initial over max",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(2000), 2.0, ms(1000))),
            ),
            (
                "backoff multiplier under 1",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(100), 0.5, ms(1000))),
            ),
            (
                "backoff multiplier NaN",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(100), f64::NAN, ms(1000))),
            ),
            (
                "max_requests 0",
                Supervisor::builder().pool(pool().workers(1).max_requests(0, 5)),
            ),
            (
                "max_request_duration 0",
                Supervisor::builder().pool(pool().workers(1).max_request_duration(Duration::ZERO)),
            ),
            (
                "force_stop_delay 0",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .force_stop_delay(Some(Duration::ZERO)),
            ),
        ];
        for (what, builder) in cases {
            match builder.spawn() {
                Err(StartError::Config(error)) => assert!(!error.to_string().is_empty(), "{what}"),
                other => panic!("{what}: expected a configuration error, got {other:?}"),
            }
        }
        // Give a wrongly started supervisor task the chance to spawn.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(children_marked(marker), Vec::<u32>::new(), "a worker was spawned");

        // The same settings, made valid, do start (the marker check works).
        let sup = Supervisor::builder()
            .pool(pool().logical_ids([4, 5]))
            .pulse(ms(100))
            .unhealthy_timeout(Some(ms(5000)))
            .restart_backoff(backoff(ms(100), 1.0, ms(100)))
            .start()
            .await
            .expect("valid settings start");
        assert_eq!(children_marked(marker).len(), 2);
        sup.soft_kill().await;
    })
    .await;
}
