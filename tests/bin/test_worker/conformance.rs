//! The `conformance` mode: the Rust SDK's conformance worker (contract C
//! of issue 15; its requests are in `tests/support/conformance.rs`). It
//! uses only the SDK's public API, as the Node and Python ones use theirs,
//! and the suite in `tests/integration/conformance/` runs the same checks on all three.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nanny_worker::protocol as p;
use nanny_worker::{HandlerError, Request, Socket, Worker};
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::conformance_ops::{
    attachment_line, mark_name, Identity, Op, Value, CANCELLED, DIR_ENV, ECHO_PREFIX, OPS, UNKNOWN_OP,
};

/// What `whoami` calls this SDK.
const LANG: &str = "rust";

/// Connects, installs the broadcast echo and the kill hooks, says ready
/// and serves until a soft kill (exit 0) or the end of the link.
pub(crate) async fn conformance() -> ExitCode {
    let worker = match nanny_worker::connect().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("conformance worker: connect failed: {e}");
            return ExitCode::from(1);
        }
    };
    let w = worker.clone();
    worker.on_broadcast("*", move |ev| {
        // Decoded and encoded again: the same bytes for canonical MessagePack.
        if let Ok(payload) = ev.data::<Value>() {
            let _ = w.emit(&format!("{ECHO_PREFIX}{}", ev.name()), &payload);
        }
    });
    let soft = mark("soft");
    worker.on_soft_kill(move || async move { write_mark(soft, "soft") });
    let hard = mark("hard");
    worker.on_hard_kill(move || write_mark(hard, "hard"));
    worker.ready();
    match worker.serve(handle).await {
        Ok(()) | Err(nanny_worker::Error::Disconnected | nanny_worker::Error::HardKilled) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance worker: serve failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Where the `hook` mark of this worker goes (none without `CONFORMANCE_DIR`).
fn mark(hook: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(DIR_ENV)?;
    let id: u64 = std::env::var(p::ENV_WORKER_ID).ok()?.parse().ok()?;
    Some(PathBuf::from(dir).join(mark_name(id, hook)))
}

fn write_mark(path: Option<PathBuf>, text: &str) {
    if let Some(path) = path {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("conformance worker: cannot write {}: {e}", path.display());
        }
    }
}

/// Only the name of a request's op.
#[derive(Deserialize)]
struct OpName {
    op: String,
}

/// Answers one request as its op says.
async fn handle(mut req: Request) -> Result<(), HandlerError> {
    let op = match req.data::<Op>() {
        Ok(op) => op,
        Err(e) => {
            let OpName { op } = req.data()?;
            if OPS.contains(&op.as_str()) {
                return Err(e.into()); // a known op with bad arguments
            }
            req.fail(UNKNOWN_OP, op);
            return Ok(());
        }
    };
    let worker = req.worker().clone();
    match op {
        Op::Echo { data } => req.respond(&data)?,
        Op::Sleep { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            req.respond("slept")?;
        }
        Op::WaitCancel { tag } => {
            req.cancelled().await;
            worker.emit(CANCELLED, &tag)?;
        }
        Op::Fail { kind, message } => req.fail(&kind, message),
        Op::BusyFor { ms } => {
            worker.busy();
            req.respond("busy")?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            worker.ready();
        }
        Op::Block { ms } => {
            std::thread::sleep(Duration::from_millis(ms)); // the runtime's only thread
            req.respond("unblocked")?;
        }
        Op::Attachment => match req.socket() {
            Some(Socket::Tcp(conn)) => write_line(req, conn).await?,
            Some(Socket::Unix(conn)) => write_line(req, conn).await?,
            other => req.fail(
                "no-connection",
                format!("no connection came with the request: {other:?}"),
            ),
        },
        Op::Whoami => whoami(&worker, req).await?,
    }
    Ok(())
}

/// Writes the attachment line to `conn`, closes it, answers `"written"`.
async fn write_line<C: AsyncWrite + Unpin>(req: Request, mut conn: C) -> Result<(), HandlerError> {
    conn.write_all(attachment_line(LANG).as_bytes()).await?;
    conn.shutdown().await?;
    drop(conn);
    req.respond("written")?;
    Ok(())
}

async fn whoami(worker: &Worker, req: Request) -> Result<(), HandlerError> {
    let in_flight = worker.requests().await.len() as u32;
    req.respond(&Identity {
        pid: nanny_worker::pid(),
        lang: LANG.into(),
        in_flight,
    })?;
    Ok(())
}
