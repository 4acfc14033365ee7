//! The SDK connection modes, beside the normal serving of requests (see
//! `serve`): `conn-echo` takes every balanced connection and answers each
//! line with `w<NANNY_WORKER_ID> <line>\n` until end of file;
//! `conn-close-after` does the same but drops its `Incoming` (the
//! supervisor reads `Listening { on: false }`) after `TEST_CONN_LIMIT`
//! connections (default 1), and serves the ones it took to their end.

use futures::StreamExt;
use nanny_worker::{Connection, Incoming, Worker};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::{JoinHandle, JoinSet};

use crate::env_u64;

/// Starts taking connections if `mode` is a connection mode. The task
/// ends when the stream ends (drain, kill, link closed) and every
/// connection it took is done; `serve` aborts it (and so its connections)
/// when it returns.
pub(crate) fn start(worker: &Worker, mode: &str) -> Option<JoinHandle<()>> {
    let limit = match mode {
        "conn-echo" => None,
        "conn-close-after" => Some(env_u64("TEST_CONN_LIMIT").unwrap_or(1)),
        _ => return None,
    };
    let incoming = worker.incoming().expect("incoming: the worker has an fd channel");
    Some(tokio::spawn(accept_loop(worker.id(), incoming, limit)))
}

async fn accept_loop(worker_id: u64, incoming: Incoming, limit: Option<u64>) {
    let mut incoming = Some(incoming);
    let mut open = JoinSet::new();
    let mut taken = 0u64;
    loop {
        tokio::select! {
            next = async { incoming.as_mut()?.next().await }, if incoming.is_some() => match next {
                Some(conn) => {
                    open.spawn(echo(worker_id, conn));
                    taken += 1;
                    if limit == Some(taken) {
                        incoming = None; // Listening { on: false }
                    }
                }
                None => incoming = None, // the stream ended: finish the open ones
            },
            Some(_) = open.join_next(), if !open.is_empty() => {}
            else => break,
        }
    }
}

/// Answers each line with `w<id> <line>\n` until end of file; dropping the
/// connection then reports it closed.
async fn echo(worker_id: u64, conn: Connection) {
    let mut conn = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match conn.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = format!("w{worker_id} {}\n", line.trim_end_matches('\n'));
        if conn.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
