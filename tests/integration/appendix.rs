//! PROTOCOL.md's Appendix A, the minimal worker a stranger would write
//! from the document, run as written (read out of the document itself)
//! against a real supervisor: it must be correct, not only short.
//!
//! It needs a Python with `msgpack`: `NANNY_PYTHON`, else the virtual
//! environment `scripts/test` makes (`target/sdk-venv`). Without one this
//! test fails, saying so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nanny::{Event, WorkerSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::runtimes::python;
use crate::support::*;

/// Appendix A's code block, written to a file of its own.
fn appendix_worker() -> PathBuf {
    let doc = include_str!("../../worker-sdk/PROTOCOL.md");
    let start = doc.find("## Appendix A").expect("Appendix A");
    let code = &doc[start..];
    let code = &code[code.find("```python\n").expect("its code block") + "```python\n".len()..];
    let code = &code[..code.find("```").expect("the block's end")];
    let path = std::env::temp_dir().join(format!("nanny-appendix-{}.py", std::process::id()));
    std::fs::write(&path, code).expect("the worker is written");
    path
}

#[tokio::test]
async fn the_minimal_worker_of_the_appendix_serves_and_stops_as_the_document_says() {
    guard(async {
        let script = appendix_worker();
        const FRAME: usize = 64 * 1024;
        let sup = builder_with(WorkerSpec::new(python()).arg(&script), 2)
            .max_frame_len(FRAME)
            .start()
            .await
            .expect("two minimal workers start");
        let echoes = join_all((0..20).map(|i| {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue(&format!("hello {i}")).await })
        }).collect())
        .await;
        for (i, echo) in echoes.into_iter().enumerate() {
            let echo: BTreeMap<String, String> = echo.expect("answered").data().expect("a map");
            assert_eq!(echo["echo"], format!("hello {i}"));
        }
        // A request of the largest payload echoes into an answer too large.
        let big = serde_bytes::ByteBuf::from(vec![7u8; nanny_worker::protocol::max_payload_len(FRAME) - 8]);
        match sup.enqueue(&big).await {
            Err(nanny::Error::Handler(error)) => assert_eq!(error.kind, "oversize"),
            other => panic!("expected an oversize error, got {other:?}"),
        }
        wait_until("heartbeats with the served counts", || async {
            health(&sup).await.iter().map(|h| h.heartbeat.as_ref().map_or(0, |b| b.served)).sum::<u64>() >= 21
        })
        .await;
        // Someone else's SIGTERM is a soft kill: it exits 0 (and is replaced).
        let events = Events::collect(&sup);
        let victim = health(&sup).await[0].pid;
        kill(Pid::from_raw(victim as i32), Signal::SIGTERM).expect("SIGTERM");
        let exited = events
            .wait_for("its exit", |e| matches!(e, Event::WorkerExited { pid, .. } if *pid == victim))
            .await;
        assert!(matches!(exited, Event::WorkerExited { status, .. } if status.code == Some(0)), "{exited:?}");
        all_ready(&sup, 2).await;
        sup.soft_kill().await;
        let clean = events.count(|e| {
            matches!(e, Event::WorkerExited { status, forced: false, expected: true, .. } if status.code == Some(0))
        });
        assert_eq!(clean, 2, "both soft-killed workers exit 0 by themselves");
        let _ = std::fs::remove_file(script);
    })
    .await;
}
