//! The Node SDK's descriptors: pools of `node sdk/node/test/fd-worker.js`
//! (`require('../')`, `connect()`, `on('request')`) with
//! `FdChannelFlavor::Node`. Attachments arrive as `req.socket` and
//! `req.stream`, response streams go back with `req.respondStream`,
//! `worker.incoming()` serves balanced connections, a broadcast hands over
//! a listening socket, and the load-process-manager layer
//! (`sdk/node/test/lpm-worker.js`) takes sockets and streams too.
//!
//! The plain-`node` worker of the same channel (no SDK) is tested in
//! `node_channel.rs`.

mod conns;
mod sockets;
mod streams;

use nanny::{Builder, FdChannelFlavor, Pool, Supervisor, WorkerSpec};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::support::runtimes::{node, repo_file};
use crate::support::*;

/// The SDK worker of these tests.
const FD_WORKER: &str = "sdk/node/test/fd-worker.js";

/// A request to `fd-worker.js` (its header lists what each does).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Caps,
    Echo,
    Flood { n: usize },
    Read,
    Buffer { n: usize },
    Readable { n: usize },
    Writable { n: usize },
    Ignore,
    Throw,
    Sleep { ms: u64 },
}

/// `node <script>`, a script of the repository.
fn sdk_spec(script: &str) -> WorkerSpec {
    WorkerSpec::new(node()).arg(repo_file(script))
}

/// `n` workers of `spec` on the Node flavour of the fd channel, short timers.
fn node_builder(spec: WorkerSpec, n: usize) -> Builder {
    let pool = Pool::default_pool(spec)
        .workers(n)
        .fd_channel(FdChannelFlavor::Node);
    timers(Supervisor::builder().pool(pool))
}

/// A started supervisor of `n` `fd-worker.js` on the Node flavour.
async fn start_node(n: usize) -> Supervisor {
    node_builder(sdk_spec(FD_WORKER), n)
        .start()
        .await
        .expect("node workers start")
}

/// The `n` bytes `fd-worker.js` generates: byte `i` is `i % 251`.
fn generated(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// `n` bytes of the test streams' pattern (what a `PatternReader` gives).
fn pattern_bytes(n: usize) -> Vec<u8> {
    crate::support::cmd::pattern()
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// Everything `reader` gives until its end.
async fn read_all(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    within("the bytes and their end", reader.read_to_end(&mut out))
        .await
        .expect("read to the end");
    out
}

/// The worker's open descriptors.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the worker's fds")
        .count()
}
