//! The servers of the connection-balancing bench (issue 9; driven by
//! `benches/http/run.sh`, figures in `BENCHMARKS.md`): the same axum
//! hello-world app served three ways on `127.0.0.1:<port>`.
//!
//! ```text
//! http_bench balancer  <port>   # nanny: a supervisor owns the socket, 2 axum_worker workers
//! http_bench reuseport <port>   # 2 child processes, each with its own SO_REUSEPORT socket
//! http_bench single    <port>   # 1 process binding the port itself
//! ```
//!
//! Every mode prints `READY` on stdout once it accepts connections, then
//! serves until its stdin reaches end of file or it gets `SIGTERM`. It then
//! prints one line per server process, `CONNS w<id> <n>`, with the number of
//! connections that process accepted (the busiest-worker share comes from
//! these), and exits.
//!
//! # Keeping the three comparable
//!
//! Every *HTTP-serving process* runs a **current-thread** tokio runtime and
//! the same app: `GET /` answers `hello from w<id>` (13 bytes for ids 1–9),
//! as `examples/axum_worker.rs` does. So:
//!
//! * `balancer`: 2 serving processes (the `axum_worker` example, found beside
//!   this binary in `target/<profile>/examples/`), plus the supervisor
//!   process (also current-thread), which accepts every connection and hands
//!   it to a worker over the worker's Unix socket (`SCM_RIGHTS`);
//! * `reuseport`: 2 serving processes; the kernel spreads connections over
//!   their sockets by a hash of the 4-tuple, no process in between;
//! * `single`: 1 serving process, so at most one CPU of HTTP work: the
//!   baseline of what one worker can do alone.
//!
//! The counts: the balancer reads each worker's `connections.total` from
//! `Supervisor::health`; the other two count in the accept path
//! (`ListenerExt::tap_io`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use nanny::{ListenAddr, Listener, Pool, Supervisor, WorkerSpec};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The kernel's listen queue, as the supervisor's default
/// (`nanny::listen::DEFAULT_LISTEN_BACKLOG`).
const LISTEN_BACKLOG: i32 = 1024;

fn usage() -> ExitCode {
    eprintln!("usage: http_bench balancer|reuseport|single <port>");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, port) = match args.as_slice() {
        [mode, port, ..] => match port.parse::<u16>() {
            Ok(port) => (mode.as_str(), port),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match mode {
            "balancer" => balancer(port).await,
            "reuseport" => reuseport(port).await,
            "single" => serve_self(port, 1, false).await,
            // `reuseport-child <port> <id>`: started by `reuseport`.
            "reuseport-child" => {
                let id = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
                serve_self(port, id, true).await
            }
            _ => Err("unknown mode".into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_bench {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The app, as in `examples/axum_worker.rs` (`GET /` only).
fn app(id: u64) -> Router {
    Router::new().route("/", get(move || async move { format!("hello from w{id}") }))
}

/// Resolves on end of file on stdin or on `SIGTERM`.
///
/// stdin is read on a plain thread, not tokio's blocking pool, so that a
/// read still pending at exit (the `SIGTERM` case) holds nothing up.
async fn stop_signal() -> Result<(), BoxError> {
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    tokio::select! {
        _ = rx => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// `balancer`: a supervisor with 2 `axum_worker` workers and a round-robin
/// TCP listener on `127.0.0.1:<port>`.
async fn balancer(port: u16) -> Result<(), BoxError> {
    let worker = sibling("axum_worker")?;
    let sup = Supervisor::builder()
        .pool(Pool::default_pool(WorkerSpec::new(&worker)).workers(2))
        .listen(Listener::tcp((Ipv4Addr::LOCALHOST, port)))
        .start()
        .await?;
    sup.ready().await?;
    // Ready is said before axum polls its listener: wait until both
    // workers take connections, so the first ones are not all one worker's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !sup.health().await?.iter().all(|w| w.connections.listening) {
        if tokio::time::Instant::now() > deadline {
            return Err("the workers did not start listening within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match &sup.inspect().await?.listeners[0].addr {
        ListenAddr::Tcp(addr) => eprintln!(
            "http_bench balancer: listening on {addr}, workers {}",
            worker.display()
        ),
        other => eprintln!("http_bench balancer: listening on {other}"),
    }
    println!("READY");
    stop_signal().await?;
    let mut health = sup.health().await?;
    health.sort_by_key(|w| w.id);
    for w in &health {
        println!("CONNS {} {}", w.id, w.connections.total);
    }
    sup.soft_kill().await;
    Ok(())
}

/// `target/<profile>/examples/<name>`, beside this binary.
fn sibling(name: &str) -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().ok_or("current_exe has no parent")?.join(name);
    if !path.is_file() {
        return Err(format!(
            "{} not found: build the examples (cargo build --release --examples)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// `reuseport`: 2 children of this binary in `reuseport-child` mode, each
/// with its own `SO_REUSEPORT` socket on the port. Their stdin is a pipe
/// from here: closing it stops them, and they print their counts.
async fn reuseport(port: u16) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for id in 1..=2u64 {
        let mut child = Command::new(&exe)
            .args(["reuseport-child", &port.to_string(), &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        match lines.next_line().await? {
            Some(line) if line == "READY" => {}
            other => return Err(format!("child {id}: expected READY, got {other:?}").into()),
        }
        children.push((child, stdin, lines));
    }
    println!("READY");
    stop_signal().await?;
    for (mut child, stdin, mut lines) in children {
        drop(stdin);
        while let Some(line) = lines.next_line().await? {
            println!("{line}");
        }
        child.wait().await?;
    }
    Ok(())
}

/// `single` and `reuseport-child`: binds `127.0.0.1:<port>` itself (with
/// `SO_REUSEPORT` for a child) and serves the app, counting connections.
async fn serve_self(port: u16, id: u64, reuse_port: bool) -> Result<(), BoxError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(socket.into())?;

    let accepted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&accepted);
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app(id)).await });
    println!("READY");
    tokio::select! {
        stopped = stop_signal() => stopped?,
        served = server => return Err(format!("server ended: {served:?}").into()),
    }
    // The load generator has finished; open connections, if any, are
    // dropped with the runtime.
    println!("CONNS w{id} {}", accepted.load(Ordering::Relaxed));
    Ok(())
}
