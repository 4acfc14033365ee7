//! One conformance suite for the workers of every SDK (issue 15): the
//! same tests, generated per language by [`conformance!`], start pools of
//! each SDK's conformance worker (the Rust one is the fixture's
//! `conformance` mode; Python's is `sdk/python/tests/conformance_worker.py`)
//! and check the behaviours PROTOCOL.md promises: request and response,
//! errors, a cancel on timeout reaching the handler, busy and ready,
//! broadcast and emit, a soft kill that runs the shutdown hook and exits
//! 0, a SIGKILL and its replacement, stall detection, a connection
//! attachment, and the runtime's memory figures in the heartbeat.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Builder, EnqueueOptions, Error, Event, WorkerSpec};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::support::runtimes::{python, repo};
use crate::support::*;

/// An SDK's conformance worker.
#[derive(Clone, Copy)]
pub(crate) enum Lang {
    Rust,
    Python,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
        }
    }

    fn spec(self) -> WorkerSpec {
        match self {
            Lang::Rust => worker_spec("conformance"),
            Lang::Python => WorkerSpec::new(python())
                .arg(repo().join("sdk/python/tests/conformance_worker.py"))
                .env("PYTHONPATH", repo().join("sdk/python")),
        }
    }

    /// Whether its heartbeats carry `runtime_memory`.
    fn reports_runtime_memory(self) -> bool {
        !matches!(self, Lang::Rust)
    }
}

/// A request of the conformance workers.
#[derive(Serialize, Default)]
struct Op {
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'static str>,
}

fn op(op: &'static str) -> Op {
    Op { op, ..Op::default() }
}

fn pool(lang: Lang, n: usize) -> Builder {
    builder_with(lang.spec(), n)
}

pub(crate) async fn request_and_errors(lang: Lang) {
    let sup = pool(lang, 1).start().await.expect("the pool starts");
    let echo: String = sup
        .enqueue(&Op {
            data: Some("hi"),
            ..op("echo")
        })
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(echo, "hi");
    let failed = Op {
        kind: Some("quota"),
        message: Some("over"),
        ..op("fail")
    };
    match sup.enqueue(&failed).await {
        Err(Error::Handler(e)) => assert_eq!((e.kind.as_str(), e.message.as_str()), ("quota", "over")),
        other => panic!("expected the handler's error, got {other:?}"),
    }
    match sup.enqueue(&op("no-such-op")).await {
        Err(Error::Handler(e)) => assert_eq!(e.kind, "unknown-op"),
        other => panic!("expected unknown-op, got {other:?}"),
    }
    let slept: String = sup
        .enqueue(&Op {
            ms: Some(20),
            ..op("sleep")
        })
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(slept, "slept");
    sup.soft_kill().await;
}

pub(crate) async fn cancel_on_timeout_reaches_the_handler(lang: Lang) {
    let sup = pool(lang, 1).start().await.expect("the pool starts");
    let events = Events::collect(&sup);
    let tag = format!("{}-cancel", lang.name());
    let wait = Op {
        tag: Some(tag.clone()),
        ..op("wait_cancel")
    };
    let options = EnqueueOptions::new()
        .timeout(Some(Duration::from_millis(300)))
        .retries(0);
    match sup.enqueue_with(&wait, options).await {
        Err(Error::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let cancelled = events
        .wait_for(
            "the handler's cancelled emit",
            |e| matches!(e, Event::Custom(c) if c.name() == "cancelled"),
        )
        .await;
    let Event::Custom(c) = cancelled else {
        unreachable!()
    };
    assert_eq!(c.data::<String>().unwrap(), tag);
    sup.soft_kill().await;
}

/// A `whoami` answer.
#[derive(serde::Deserialize, Debug)]
struct Me {
    pid: u32,
    lang: String,
    in_flight: u64,
}

async fn whoami(sup: &nanny::Supervisor) -> Me {
    sup.enqueue(&op("whoami"))
        .await
        .expect("whoami")
        .data()
        .expect("a whoami map")
}

pub(crate) async fn a_busy_worker_gets_no_requests(lang: Lang) {
    let sup = pool(lang, 2).start().await.expect("the pool starts");
    let me = whoami(&sup).await;
    assert_eq!(
        (me.lang.as_str(), me.in_flight),
        (lang.name(), 1),
        "whoami counts itself in flight"
    );
    let busy: String = sup
        .enqueue(&Op {
            ms: Some(1500),
            ..op("busy_for")
        })
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(busy, "busy");
    let busy_pid = eventually("a busy worker", || async {
        health(&sup)
            .await
            .iter()
            .find(|h| h.state == nanny::WorkerState::Busy)
            .map(|h| h.pid)
    })
    .await;
    for _ in 0..6 {
        let pid = whoami(&sup).await.pid;
        // Busy before the request and still busy after it: busy throughout.
        if health(&sup)
            .await
            .iter()
            .any(|h| h.pid == busy_pid && h.state == nanny::WorkerState::Busy)
        {
            assert_ne!(pid, busy_pid, "a request reached the busy worker");
        }
    }
    all_ready(&sup, 2).await;
    sup.soft_kill().await;
}

pub(crate) async fn broadcast_is_emitted_back(lang: Lang) {
    let sup = pool(lang, 2).start().await.expect("the pool starts");
    let events = Events::collect(&sup);
    sup.broadcast("conf", &"hello").await.expect("a broadcast");
    wait_until("both workers emit it back", || async {
        events.count(|e| {
            matches!(e, Event::Custom(c) if c.name() == "echo:conf"
                && c.data::<String>().ok().as_deref() == Some("hello"))
        }) == 2
    })
    .await;
    sup.soft_kill().await;
}

pub(crate) async fn soft_kill_runs_the_hook_and_exits_zero(lang: Lang) {
    let dir = std::env::temp_dir().join(format!(
        "nanny-conformance-{}-{}",
        lang.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a directory for the hooks");
    let sup = builder_with(lang.spec().env("CONFORMANCE_DIR", &dir), 2)
        .start()
        .await
        .expect("the pool starts");
    let ids: Vec<u64> = health(&sup).await.iter().map(|h| h.id.get()).collect();
    let events = Events::collect(&sup);
    sup.soft_kill().await;
    let clean = events.count(|e| {
        matches!(e, Event::WorkerExited { status, forced: false, .. } if status.code == Some(0) && status.signal.is_none())
    });
    assert_eq!(clean, 2, "both exit 0 by themselves: {:?}", events.snapshot());
    for id in ids {
        let hook = std::fs::read_to_string(dir.join(format!("{id}.soft")));
        assert_eq!(
            hook.ok().as_deref(),
            Some("soft"),
            "worker {id}'s soft-kill hook ran"
        );
    }
}

pub(crate) async fn a_sigkilled_worker_is_replaced(lang: Lang) {
    let sup = pool(lang, 1).start().await.expect("the pool starts");
    let victim = whoami(&sup).await.pid;
    let events = Events::collect(&sup);
    sigkill(victim);
    events
        .wait_for("its exit by SIGKILL", |e| {
            matches!(e, Event::WorkerExited { pid, status, .. } if *pid == victim && status.signal == Some(9))
        })
        .await;
    all_ready(&sup, 1).await;
    assert_ne!(whoami(&sup).await.pid, victim, "a replacement serves");
    sup.soft_kill().await;
}

pub(crate) async fn a_blocked_loop_is_a_stall(lang: Lang) {
    let sup = pool(lang, 1)
        .unhealthy_timeout(Some(Duration::from_millis(500)))
        .start()
        .await
        .expect("the pool starts");
    let events = Events::collect(&sup);
    let blocked = spawn_enqueue_op(
        &sup,
        Op {
            ms: Some(4000),
            ..op("block")
        },
    );
    events
        .wait_for("the stall", |e| {
            matches!(
                e,
                Event::WorkerStopping {
                    reason: StopReason::Stalled,
                    ..
                }
            )
        })
        .await;
    all_ready(&sup, 1).await;
    blocked.abort();
    sup.hard_kill().await;
}

fn spawn_enqueue_op(sup: &nanny::Supervisor, op: Op) -> tokio::task::JoinHandle<()> {
    let sup = sup.clone();
    tokio::spawn(async move {
        let _ = sup.enqueue(&op).await;
    })
}

pub(crate) async fn a_connection_attachment_is_written(lang: Lang) {
    let sup = pool(lang, 1).start().await.expect("the pool starts");
    let (mut ours, attachment) = unix_attachment();
    let written: String = sup
        .enqueue_with(&op("attachment"), attach(attachment))
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(written, "written");
    let mut line = String::new();
    ours.read_to_string(&mut line)
        .await
        .expect("the worker's line, then end of file");
    assert_eq!(line, format!("conformance {}\n", lang.name()));
    sup.soft_kill().await;
}

pub(crate) async fn heartbeats_carry_the_runtime_memory(lang: Lang) {
    let sup = pool(lang, 1).start().await.expect("the pool starts");
    let figures = eventually("a heartbeat", || async {
        let h = health(&sup).await.into_iter().next()?;
        h.heartbeat.is_some().then(|| h.runtime_memory().clone())
    })
    .await;
    assert_eq!(!figures.is_empty(), lang.reports_runtime_memory(), "{figures:?}");
    assert!(
        figures.values().any(|&v| v > 0) || !lang.reports_runtime_memory(),
        "{figures:?}"
    );
    sup.soft_kill().await;
}

/// One test per behaviour for `lang`.
macro_rules! conformance {
    ($module:ident, $lang:expr) => {
        mod $module {
            use super::*;
            conformance!(@tests $lang; request_and_errors, cancel_on_timeout_reaches_the_handler,
                a_busy_worker_gets_no_requests, broadcast_is_emitted_back,
                soft_kill_runs_the_hook_and_exits_zero, a_sigkilled_worker_is_replaced,
                a_blocked_loop_is_a_stall, a_connection_attachment_is_written,
                heartbeats_carry_the_runtime_memory);
        }
    };
    (@tests $lang:expr; $($test:ident),*) => {
        $(
            #[tokio::test]
            async fn $test() {
                guard(super::$test($lang)).await;
            }
        )*
    };
}

conformance!(rust, Lang::Rust);
conformance!(python, Lang::Python);
