//! Connection hand-off: the supervisor accepts TCP connections and enqueues
//! each one, with a payload, to a worker; the worker talks to the client
//! directly (the socket crosses with `SCM_RIGHTS`: no byte passes through the
//! supervisor).
//!
//! ```text
//! cargo run --release --example tcp_handoff            # serves 127.0.0.1:7878 until Ctrl-C
//! cargo run --release --example tcp_handoff -- --demo  # also plays 8 clients, then stops
//! ```
//!
//! Try it with `nc 127.0.0.1 7878`: every line you type comes back upper-cased,
//! with the worker's pid in front.

use std::process::ExitCode;

use nanny::{Attachment, EnqueueOptions, Pool, Supervisor, WorkerSpec};
use nanny_worker::Socket;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What travels with each connection.
#[derive(Debug, Serialize, Deserialize)]
struct Connection {
    peer: String,
}

/// What the worker answers once the client has gone.
#[derive(Debug, Serialize, Deserialize)]
struct Served {
    lines: u64,
    pid: u32,
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = if nanny_worker::is_worker() {
        runtime.block_on(worker())
    } else {
        runtime.block_on(supervisor(std::env::args().any(|a| a == "--demo")))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_handoff: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn worker() -> Result<(), BoxError> {
    let worker = nanny_worker::connect().await?;
    worker.ready();
    worker
        .serve(|mut req| async move {
            let Some(Socket::Tcp(stream)) = req.socket() else {
                req.fail("bad-request", "expected a TCP connection");
                return Ok(());
            };
            let lines = echo_upper(stream).await?;
            req.respond(&Served {
                lines,
                pid: nanny_worker::pid(),
            })?;
            Ok(())
        })
        .await?;
    Ok(())
}

/// Echoes each line upper-cased, with this worker's pid, until the client closes.
async fn echo_upper(stream: TcpStream) -> std::io::Result<u64> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut count = 0;
    while let Some(line) = lines.next_line().await? {
        let reply = format!("[{}] {}\n", nanny_worker::pid(), line.to_uppercase());
        write.write_all(reply.as_bytes()).await?;
        count += 1;
    }
    Ok(count)
}

async fn supervisor(demo: bool) -> Result<(), BoxError> {
    let supervisor = Supervisor::builder()
        .pool(Pool::default_pool(WorkerSpec::current_exe()?).workers(2))
        .handle_signals(true)
        .start()
        .await?;
    let listener = TcpListener::bind(if demo { "127.0.0.1:0" } else { "127.0.0.1:7878" }).await?;
    let addr = listener.local_addr()?;
    eprintln!("listening on {addr}");

    let clients = demo.then(|| tokio::spawn(play_clients(addr, 8)));
    let mut accepted = 0;
    let mut requests = tokio::task::JoinSet::new();
    // In demo mode, exactly the 8 demo clients; otherwise until Ctrl-C.
    while !(supervisor.is_closed() || (demo && accepted == 8)) {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => a?,
            () = supervisor.closed() => break,
        };
        let s = supervisor.clone();
        let payload = Connection {
            peer: peer.to_string(),
        };
        let options = EnqueueOptions::new().attach(Attachment::tcp(stream)?);
        while requests.try_join_next().is_some() {} // reap the finished ones
        requests.spawn(async move {
            match s.enqueue_with(&payload, options).await {
                Ok(r) => {
                    let served: Served = r.data().expect("a Served answer");
                    eprintln!("{peer}: {} line(s) served by pid {}", served.lines, served.pid);
                }
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
        accepted += 1;
    }
    if let Some(clients) = clients {
        clients.await??;
    }
    // Every answer reported before the end.
    while requests.join_next().await.is_some() {}
    supervisor.soft_kill().await;
    Ok(())
}

/// Connects `n` clients, each sending three lines and checking the echoes.
async fn play_clients(addr: std::net::SocketAddr, n: usize) -> Result<(), BoxError> {
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            for j in 0..3 {
                write
                    .write_all(format!("client {i} line {j}\n").as_bytes())
                    .await?;
                let echo = lines.next_line().await?.ok_or("connection closed early")?;
                if !echo.ends_with(&format!("CLIENT {i} LINE {j}")) {
                    return Err(format!("unexpected echo {echo:?}").into());
                }
            }
            Ok::<(), BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!("{n} clients served directly by the workers");
    Ok(())
}
