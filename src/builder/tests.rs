//! Validation: each bad setting gets its [`ConfigError`] variant, from
//! [`Builder::spawn`] inside a runtime, and no worker is spawned.

use std::time::Duration;

use super::*;
use crate::{Backoff, ConfigError, ConfigError as E, WorkerSpec};

/// Workers started by these tests carry `MARKER=<test name>`.
const MARKER: &str = "NANNY_UNIT_TEST_MARKER";

/// A worker that would live a few seconds if it were (wrongly) spawned.
fn spec(marker: &str) -> WorkerSpec {
    WorkerSpec::new("/bin/sh")
        .args(["-c", "sleep 5"])
        .env(MARKER, marker)
}

/// A valid pool `p` of one worker.
fn pool(marker: &str) -> Pool {
    Pool::new("p", spec(marker)).workers(1)
}

/// A valid configuration of one pool.
fn valid(marker: &str) -> Builder {
    Supervisor::builder().pool(pool(marker))
}

/// Children of this process whose environment holds `MARKER=marker`.
fn children_marked(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let needle = format!("{MARKER}={marker}");
    let ppid = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ppid(pid) == Some(me))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

/// `builder.spawn()`'s configuration error; panics on any other outcome or
/// if a worker marked `marker` appears.
async fn refused(marker: &str, builder: Builder) -> ConfigError {
    let error = match builder.spawn() {
        Err(StartError::Config(error)) => error,
        Err(other) => panic!("{marker}: expected a configuration error, got {other:?}"),
        Ok(_) => panic!("{marker}: expected a configuration error, the supervisor started"),
    };
    // Give a wrongly started supervisor task the chance to spawn.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        children_marked(marker),
        Vec::<u32>::new(),
        "{marker}: a worker was spawned"
    );
    error
}

#[tokio::test]
async fn the_base_configuration_is_valid_and_its_worker_is_seen() {
    let m = "valid";
    valid(m).cfg.validate().expect("valid");
    // The control for `refused`: a spawned worker is found by its marker.
    let supervisor = valid(m).spawn().expect("spawn");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while children_marked(m).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    supervisor.hard_kill().await;
    assert_eq!(children_marked(m), Vec::<u32>::new(), "reaped by hard_kill");
}

#[tokio::test]
async fn no_pools() {
    let e = refused("no_pools", Supervisor::builder()).await;
    assert!(matches!(e, E::NoPools), "{e:?}");
}

#[tokio::test]
async fn empty_pool_name() {
    let m = "empty_pool_name";
    let e = refused(m, Supervisor::builder().pool(Pool::new("", spec(m)).workers(1))).await;
    assert!(matches!(e, E::EmptyPoolName), "{e:?}");
}

#[tokio::test]
async fn duplicate_pool() {
    let m = "duplicate_pool";
    let e = refused(m, valid(m).pool(Pool::new("q", spec(m))).pool(pool(m))).await;
    assert!(matches!(&e, E::DuplicatePool { pool } if pool == "p"), "{e:?}");
}

#[tokio::test]
async fn zero_workers() {
    let m = "zero_workers";
    let e = refused(m, Supervisor::builder().pool(pool(m).workers(0))).await;
    assert!(matches!(&e, E::ZeroWorkers { pool } if pool == "p"), "{e:?}");
    // An empty list of logical ids sets the count to zero.
    let e = refused(
        m,
        Supervisor::builder().pool(Pool::new("p", spec(m)).logical_ids([])),
    )
    .await;
    assert!(matches!(&e, E::ZeroWorkers { pool } if pool == "p"), "{e:?}");
}

#[tokio::test]
async fn too_many_workers() {
    let m = "too_many_workers";
    let n = Pool::MAX_WORKERS + 1;
    let e = refused(m, Supervisor::builder().pool(pool(m).workers(n))).await;
    assert!(
        matches!(&e, E::TooManyWorkers { pool, workers, max }
            if pool == "p" && *workers == n && *max == Pool::MAX_WORKERS),
        "{e:?}"
    );
    let e = refused(
        m,
        Supervisor::builder().pool(Pool::new("p", spec(m)).logical_ids(0..n as u64)),
    )
    .await;
    assert!(matches!(&e, E::TooManyWorkers { .. }), "{e:?}");
}

#[tokio::test]
async fn zero_concurrency() {
    let m = "zero_concurrency";
    let e = refused(m, Supervisor::builder().pool(pool(m).concurrency(0))).await;
    assert!(matches!(&e, E::ZeroConcurrency { pool } if pool == "p"), "{e:?}");
}

#[tokio::test]
async fn empty_program() {
    let m = "empty_program";
    let spec = WorkerSpec::new("").env(MARKER, m);
    let e = refused(m, Supervisor::builder().pool(Pool::new("p", spec).workers(1))).await;
    assert!(matches!(&e, E::EmptyProgram { pool } if pool == "p"), "{e:?}");
}

#[tokio::test]
async fn program_not_found() {
    use std::os::unix::fs::PermissionsExt;
    let m = "program_not_found";
    let not_executable = std::env::temp_dir().join(format!("nanny-{m}-{}", std::process::id()));
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let programs = [
        "/no/such/dir/worker".into(),
        "nanny-no-such-program-on-path".into(),
        not_executable.clone(),
        std::env::temp_dir(), // a directory
    ];
    for program in programs {
        let spec = WorkerSpec::new(&program).env(MARKER, m);
        let e = refused(m, Supervisor::builder().pool(Pool::new("p", spec).workers(1))).await;
        assert!(
            matches!(&e, E::ProgramNotFound { pool, program: p } if pool == "p" && *p == program),
            "{}: {e:?}",
            program.display()
        );
    }
    std::fs::remove_file(&not_executable).unwrap();
}

#[tokio::test]
async fn logical_ids_disagree_with_the_count() {
    let m = "logical_ids";
    let e = refused(
        m,
        Supervisor::builder().pool(pool(m).workers(2).logical_ids([1, 2, 3])),
    )
    .await;
    assert!(
        matches!(&e, E::LogicalIds { pool, ids: 3, workers: 2 } if pool == "p"),
        "{e:?}"
    );
}

#[tokio::test]
async fn duplicate_logical_id() {
    let m = "duplicate_logical_id";
    let p = Pool::new("p", spec(m)).logical_ids([9, 4, 7, 4]);
    let e = refused(m, Supervisor::builder().pool(p)).await;
    assert!(
        matches!(&e, E::DuplicateLogicalId { pool, id: 4 } if pool == "p"),
        "{e:?}"
    );
}

#[tokio::test]
async fn zero_max_requests() {
    let m = "zero_max_requests";
    let e = refused(m, Supervisor::builder().pool(pool(m).max_requests(0, 5))).await;
    assert!(matches!(&e, E::ZeroMaxRequests { pool } if pool == "p"), "{e:?}");
}

#[tokio::test]
async fn zero_max_request_duration() {
    let m = "zero_max_request_duration";
    let builder = Supervisor::builder().pool(pool(m).max_request_duration(Duration::ZERO));
    let e = refused(m, builder).await;
    assert!(
        matches!(&e, E::ZeroMaxRequestDuration { pool } if pool == "p"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_later_pool_is_named() {
    let m = "a_later_pool_is_named";
    let e = refused(m, valid(m).pool(Pool::new("second", spec(m)).workers(0))).await;
    assert!(matches!(&e, E::ZeroWorkers { pool } if pool == "second"), "{e:?}");
}

#[tokio::test]
async fn zero_max_queue() {
    let m = "zero_max_queue";
    let e = refused(m, valid(m).max_queue(0)).await;
    assert!(matches!(e, E::ZeroMaxQueue), "{e:?}");
}

#[tokio::test]
async fn zero_pulse() {
    let m = "zero_pulse";
    let e = refused(m, valid(m).pulse(Duration::ZERO)).await;
    assert!(matches!(e, E::ZeroPulse), "{e:?}");
}

#[tokio::test]
async fn zero_start_timeout() {
    let m = "zero_start_timeout";
    let e = refused(m, valid(m).start_timeout(Duration::ZERO)).await;
    assert!(matches!(e, E::ZeroStartTimeout), "{e:?}");
}

#[tokio::test]
async fn frame_too_small() {
    let m = "frame_too_small";
    let e = refused(m, valid(m).max_frame_len(1023)).await;
    assert!(
        matches!(
            e,
            E::FrameTooSmall {
                max_frame_len: 1023,
                min: 1024
            }
        ),
        "{e:?}"
    );
    valid(m)
        .max_frame_len(1024)
        .cfg
        .validate()
        .expect("1 KiB is accepted");
}

#[tokio::test]
async fn frame_too_large() {
    let m = "frame_too_large";
    let too_large = u32::MAX as usize + 1;
    let e = refused(m, valid(m).max_frame_len(too_large)).await;
    assert!(
        matches!(e, E::FrameTooLarge { max_frame_len, max } if max_frame_len == too_large && max == u32::MAX as usize),
        "{e:?}"
    );
    let max = u32::MAX as usize;
    valid(m)
        .max_frame_len(max)
        .cfg
        .validate()
        .expect("u32::MAX is accepted");
}

#[tokio::test]
async fn zero_restart_window() {
    let m = "zero_restart_window";
    let e = refused(m, valid(m).restart_window(Duration::ZERO)).await;
    assert!(matches!(e, E::ZeroRestartWindow), "{e:?}");
}

#[tokio::test]
async fn zero_event_capacity() {
    let m = "zero_event_capacity";
    let e = refused(m, valid(m).event_capacity(0)).await;
    assert!(matches!(e, E::ZeroEventCapacity), "{e:?}");
}

#[tokio::test]
async fn unhealthy_timeout_not_above_pulse() {
    let m = "unhealthy_timeout_not_above_pulse";
    let ms = Duration::from_millis;
    for timeout in [ms(500), ms(100)] {
        let builder = valid(m).pulse(ms(500)).unhealthy_timeout(Some(timeout));
        let e = refused(m, builder).await;
        assert!(
            matches!(e, E::UnhealthyTimeoutNotAbovePulse { unhealthy_timeout, pulse }
                if unhealthy_timeout == timeout && pulse == ms(500)),
            "{e:?}"
        );
    }
    let builder = valid(m).pulse(ms(500)).unhealthy_timeout(None);
    builder.cfg.validate().expect("no unhealthy timeout");
}

#[tokio::test]
async fn zero_force_stop_delay() {
    let m = "zero_force_stop_delay";
    let e = refused(m, valid(m).force_stop_delay(Some(Duration::ZERO))).await;
    assert!(matches!(e, E::ZeroForceStopDelay), "{e:?}");
}

fn backoff(initial_ms: u64, multiplier: f64, max_ms: u64) -> Backoff {
    Backoff {
        initial: Duration::from_millis(initial_ms),
        multiplier,
        max: Duration::from_millis(max_ms),
        reset_after: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn backoff_multiplier() {
    let m = "backoff_multiplier";
    for bad in [0.5, f64::NAN, f64::INFINITY] {
        let e = refused(m, valid(m).restart_backoff(backoff(100, bad, 1000))).await;
        assert!(
            matches!(e, E::BackoffMultiplier { multiplier } if multiplier.to_bits() == bad.to_bits()),
            "{bad}: {e:?}"
        );
    }
}

#[tokio::test]
async fn backoff_initial_over_max() {
    let m = "backoff_initial_over_max";
    let e = refused(m, valid(m).restart_backoff(backoff(2000, 2.0, 1000))).await;
    assert!(
        matches!(e, E::BackoffInitialOverMax { initial, max }
            if initial == Duration::from_millis(2000) && max == Duration::from_millis(1000)),
        "{e:?}"
    );
}

#[tokio::test]
async fn zero_request_timeout() {
    let m = "zero_request_timeout";
    let e = refused(m, valid(m).request_timeout(Duration::ZERO)).await;
    assert!(matches!(e, E::ZeroRequestTimeout), "{e:?}");
}

#[test]
fn not_in_runtime() {
    let m = "not_in_runtime";
    match valid(m).spawn() {
        Err(StartError::Config(E::NotInRuntime)) => {}
        Err(other) => panic!("expected NotInRuntime, got {other:?}"),
        Ok(_) => panic!("expected NotInRuntime, the supervisor started"),
    }
    assert_eq!(children_marked(m), Vec::<u32>::new(), "a worker was spawned");
}

#[test]
fn messages_are_lower_case_and_carry_the_data() {
    let e = E::LogicalIds {
        pool: "p".into(),
        ids: 3,
        workers: 2,
    };
    assert_eq!(e.to_string(), r#"pool "p" has 2 workers but 3 logical ids"#);
    let start = StartError::from(e.clone());
    assert_eq!(start.to_string(), format!("invalid configuration: {e}"));
    let source = std::error::Error::source(&start).expect("the ConfigError is the source");
    assert_eq!(source.to_string(), e.to_string());
    for e in [
        E::NoPools,
        E::NotInRuntime,
        E::ZeroMaxQueue,
        E::FrameTooSmall {
            max_frame_len: 10,
            min: 1024,
        },
    ] {
        let text = e.to_string();
        assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
}
