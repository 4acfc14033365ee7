//! Helpers for the connection-balancing tests: a pool of `conn-echo`
//! workers behind a TCP listener, and clients that learn which worker
//! served them (the worker answers each line with `w<id> <line>`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use nanny::{Builder, ListenAddr, Listener, Pool, Supervisor, WorkerHealth, WorkerState};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{health, timers, wait_until, worker_spec};

/// A builder of one pool of `n` `conn-echo` workers with a TCP listener on
/// a free port of 127.0.0.1.
pub(crate) fn echo_pool(n: usize) -> Builder {
    timers(Supervisor::builder())
        .pool(Pool::default_pool(worker_spec("conn-echo")).workers(n))
        .listen(Listener::tcp(([127, 0, 0, 1], 0)))
}

/// A spawned (not started) pool of `n` `conn-echo` workers that say ready
/// only on a `go` broadcast, behind a listener with this `backlog`.
pub(crate) fn waiting_pool(n: usize, backlog: usize) -> Supervisor {
    let spec = worker_spec("conn-echo").env("TEST_READY_ON", "go");
    timers(Supervisor::builder())
        .pool(Pool::default_pool(spec).workers(n))
        .listen(Listener::tcp(([127, 0, 0, 1], 0)).backlog(backlog))
        .spawn()
        .expect("spawn")
}

/// `n` clients at once, each one connection and one line (`<tag> <i>`):
/// each task returns the worker that served it.
pub(crate) fn spawn_clients(addr: SocketAddr, n: usize, tag: &str) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..n)
        .map(|i| {
            let line = format!("{tag} {i}");
            tokio::spawn(async move { served_by(addr, &line).await })
        })
        .collect()
}

/// The address of the supervisor's first listener.
pub(crate) async fn listener_addr(sup: &Supervisor) -> SocketAddr {
    match &sup.inspect().await.expect("inspect").listeners[0].addr {
        ListenAddr::Tcp(addr) => *addr,
        other => panic!("not a TCP listener: {other:?}"),
    }
}

/// Waits until `n` workers have said hello (and wait to be told `go`): a
/// broadcast reaches only the workers connected when it is sent.
pub(crate) async fn all_connected(sup: &Supervisor, n: usize) {
    wait_until("every worker said hello", || async {
        let said = |w: &&WorkerHealth| w.state != WorkerState::Spawning;
        health(sup).await.iter().filter(said).count() == n
    })
    .await;
}

/// Waits until `n` workers are ready and listening.
pub(crate) async fn all_listening(sup: &Supervisor, n: usize) -> Vec<WorkerHealth> {
    wait_until("every worker listens", || async {
        health(sup)
            .await
            .iter()
            .filter(|w| w.connections.listening)
            .count()
            == n
    })
    .await;
    health(sup).await
}

/// An open client connection that says which worker serves it.
#[derive(Debug)]
pub(crate) struct Client {
    lines: BufReader<TcpStream>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            lines: BufReader::new(stream),
        }
    }

    /// A client on a connected (non-blocking) std socket.
    pub(crate) fn from_std(stream: std::net::TcpStream) -> Self {
        Self {
            lines: BufReader::new(TcpStream::from_std(stream).expect("a tokio stream")),
        }
    }

    /// Sends `line`; returns the id of the worker that echoed it.
    pub(crate) async fn ask(&mut self, line: &str) -> u64 {
        let stream = self.lines.get_mut();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        let mut answer = String::new();
        self.lines.read_line(&mut answer).await.expect("read");
        let (worker, echoed) = answer
            .trim_end()
            .split_once(' ')
            .unwrap_or_else(|| panic!("not an echo: {answer:?}"));
        assert_eq!(echoed, line, "the echo");
        worker
            .strip_prefix('w')
            .and_then(|n| n.parse().ok())
            .expect("w<id>")
    }
}

/// One connection, one line: the worker that served it.
pub(crate) async fn served_by(addr: SocketAddr, line: &str) -> u64 {
    Client::connect(addr).await.ask(line).await
}

/// [`served_by`] that reports a refused, reset or wrong exchange instead
/// of panicking (for load that must count failures).
pub(crate) async fn try_served_by(addr: SocketAddr, line: &str) -> Result<u64, String> {
    let mut lines = BufReader::new(
        TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?,
    );
    let stream = lines.get_mut();
    (stream.write_all(format!("{line}\n").as_bytes()).await).map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    lines
        .read_line(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let (worker, echoed) =
        (answer.trim_end().split_once(' ')).ok_or_else(|| format!("not an echo: {answer:?}"))?;
    if echoed != line {
        return Err(format!("echoed {echoed:?} for {line:?}"));
    }
    (worker.strip_prefix('w').and_then(|n| n.parse().ok())).ok_or_else(|| format!("not w<id>: {worker:?}"))
}

/// Counts per worker id.
pub(crate) fn tally(ids: impl IntoIterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}
