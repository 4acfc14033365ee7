//! The `conformance` mode: the Rust SDK's conformance worker (issue 15),
//! the same behaviour as `sdk/node/test/conformance-worker.js` and
//! `sdk/python/tests/conformance_worker.py`, so `tests/integration/
//! conformance.rs` checks every language with one test. Requests are
//! MessagePack maps `{"op": …}`; broadcasts are emitted back as
//! `echo:<event>`; the soft and hard kill hooks write
//! `$CONFORMANCE_DIR/<worker id>.soft` / `.hard`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use nanny_worker::{Request, Socket, Worker};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// The broadcast the harness sends (payload: a string).
const EVENT: &str = "conf";

#[derive(Deserialize)]
struct Job {
    op: String,
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<String>,
}

fn mark(worker: &Worker, suffix: &str) {
    if let Some(dir) = std::env::var_os("CONFORMANCE_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{}.{suffix}", worker.id()));
        let _ = std::fs::write(path, suffix);
    }
}

pub(crate) async fn conformance() -> ExitCode {
    let worker = nanny_worker::connect().await.expect("a nanny worker");
    let echo = worker.clone();
    worker.on_broadcast(EVENT, move |event| {
        let payload: String = event.data().unwrap_or_default();
        let _ = echo.emit(&format!("echo:{EVENT}"), &payload);
    });
    let soft = worker.clone();
    worker.on_soft_kill(move || async move { mark(&soft, "soft") });
    let hard = worker.clone();
    worker.on_hard_kill(move || mark(&hard, "hard"));
    worker.ready();
    match worker.serve(handle).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(mut req: Request) -> Result<(), BoxError> {
    let job: Job = req.data()?;
    let worker = req.worker().clone();
    match job.op.as_str() {
        "echo" => req.respond(&job.data)?,
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(job.ms)).await;
            req.respond("slept")?;
        }
        "wait_cancel" => {
            req.cancelled().await;
            worker.emit("cancelled", &job.tag)?;
        }
        "fail" => req.fail(&job.kind, job.message),
        "busy_for" => {
            worker.busy();
            req.respond("busy")?;
            tokio::time::sleep(Duration::from_millis(job.ms)).await;
            worker.ready();
        }
        "block" => {
            std::thread::sleep(Duration::from_millis(job.ms)); // blocks this runtime on purpose
            req.respond("unblocked")?;
        }
        "attachment" => {
            let line = b"conformance rust\n";
            match req.socket() {
                Some(Socket::Tcp(mut s)) => s.write_all(line).await?,
                Some(Socket::Unix(mut s)) => s.write_all(line).await?,
                _ => return Err("no connection attached".into()),
            }
            req.respond("written")?;
        }
        "whoami" => {
            let in_flight = worker.requests().await.len() as u64;
            let me = BTreeMap::from([
                ("pid", Value::U(nanny_worker::pid().into())),
                ("lang", Value::S("rust")),
                ("in_flight", Value::U(in_flight)),
            ]);
            req.respond(&me)?;
        }
        other => req.fail("unknown-op", other),
    }
    Ok(())
}

/// The values of a `whoami` answer.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Value {
    U(u64),
    S(&'static str),
}
