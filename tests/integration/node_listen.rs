//! The Node preload `sdk/node/listen.js` (`node -r nanny-worker/listen`):
//! an unmodified Node HTTP server (`tests/node/plain-http.js`, nothing
//! nanny-specific in it) takes the connections nanny's balancer gives its
//! worker instead of binding its port, a soft kill lets its response in
//! flight finish before the worker exits 0, outside nanny the preload
//! does nothing (the script binds and answers as usual), and in a pool
//! without the Node fd channel it lets the script bind and says ready.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;

use nanny::events::StopReason;
use nanny::{Event, FdChannelFlavor, Listener, Pool, Supervisor, WorkerSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::conns::{all_listening, listener_addr};
use crate::support::*;

/// The preload, by absolute path.
const PRELOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/node/listen.js");
/// The unmodified server.
const PLAIN_HTTP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/plain-http.js");

/// A started supervisor: `n` workers `node -r listen.js plain-http.js` on
/// the Node fd channel, behind a TCP listener on a free port. Without PID
/// namespaces, so that the pid the script answers with (`process.pid`) is
/// the host's pid of its worker (in a namespace every worker is pid 2).
async fn start_plain_http(n: usize) -> Supervisor {
    let spec = WorkerSpec::new("node").args(["-r", PRELOAD, PLAIN_HTTP]);
    let pool = Pool::default_pool(spec)
        .workers(n)
        .fd_channel(FdChannelFlavor::Node);
    let sup = timers(Supervisor::builder().pool(pool))
        .contain_descendants(false)
        .listen(Listener::tcp(([127, 0, 0, 1], 0)))
        .start()
        .await
        .expect("start");
    all_listening(&sup, n).await;
    sup
}

/// One `GET /` on its own connection: the status line and the body.
async fn get(addr: SocketAddr) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write the request");
    let mut raw = Vec::new();
    within("the response", tcp.read_to_end(&mut raw))
        .await
        .expect("read the response");
    split_response(&String::from_utf8(raw).expect("utf-8"))
}

/// `(status line, body)` of a whole HTTP/1.1 response.
fn split_response(text: &str) -> (String, String) {
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The pid in `hello from <pid>`.
fn pid_of(body: &str) -> u32 {
    body.strip_prefix("hello from ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a hello: {body:?}"))
}

#[tokio::test]
async fn an_unmodified_node_server_serves_balanced_connections_from_both_workers() {
    guard(async {
        let sup = start_plain_http(2).await;
        let addr = listener_addr(&sup).await;
        let workers: BTreeSet<u32> = health(&sup).await.iter().map(|w| w.pid).collect();
        let mut answered = BTreeSet::new();
        for _ in 0..20 {
            let (status, body) = get(addr).await;
            assert_eq!(status, "HTTP/1.1 200 OK", "body {body:?}");
            answered.insert(pid_of(&body));
        }
        assert_eq!(answered, workers, "both workers answered, and only they");
        wait_until("every connection closed", || async {
            let h = health(&sup).await;
            h.iter().map(|w| w.connections.total).sum::<u64>() == 20
                && h.iter().all(|w| w.connections.open == 0)
        })
        .await;
        // Round robin over two equal workers: the shares are exact.
        let shares: Vec<u64> = health(&sup).await.iter().map(|w| w.connections.total).collect();
        assert_eq!(shares, [10, 10]);
        sup.soft_kill().await;
    })
    .await;
}

/// Reads from `tcp` until `text` has arrived; returns what was read.
async fn read_until(tcp: &mut TcpStream, text: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(text) {
        let n = within("more of the response", tcp.read(&mut buf))
            .await
            .expect("read");
        assert!(n > 0, "the connection ended before {text:?}: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(seen).expect("utf-8")
}

#[tokio::test]
async fn a_soft_kill_lets_the_response_in_flight_finish_and_the_workers_exit_0() {
    guard(async {
        let sup = start_plain_http(2).await;
        let addr = listener_addr(&sup).await;
        let events = Events::collect(&sup);
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(
            b"POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("write the head");
        let head = read_until(&mut tcp, "started\n").await;
        let stopper = sup.clone();
        let stopping = tokio::spawn(async move { stopper.soft_kill().await });
        // The idle worker is drained and gone while ours holds its response open.
        let first = events.wait_for_exit("the idle worker's exit", |_| true).await;
        assert_eq!(
            events.exits().len(),
            1,
            "the serving worker waits for its response"
        );
        tcp.write_all(b"4\r\nbody\r\n0\r\n\r\n")
            .await
            .expect("end the body");
        let mut rest = String::new();
        within("the end of the response", tcp.read_to_string(&mut rest))
            .await
            .expect("read");
        let (status, _) = split_response(&head);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let text = format!("{head}{rest}");
        let served_by: u32 = text
            .split("finished by ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the response did not finish: {text:?}"));
        within("the soft kill", stopping).await.expect("task");
        let exits = events.exits();
        assert_eq!(exits.len(), 2, "{exits:?}");
        assert_ne!(first.pid, served_by);
        assert_eq!(exits[1].pid, served_by, "the serving worker exits last");
        for exit in &exits {
            assert_eq!(exit.status.code, Some(0), "{exit:?}");
            assert!(exit.expected && !exit.forced, "{exit:?}");
            assert_eq!(exit.reason, Some(StopReason::Shutdown), "{exit:?}");
        }
        let stopped = events.count(|e| {
            matches!(
                e,
                Event::WorkerStopping {
                    reason: StopReason::Shutdown,
                    ..
                }
            )
        });
        assert_eq!(stopped, 2);
    })
    .await;
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn without_the_node_channel_the_server_binds_its_port_and_the_worker_says_ready() {
    guard(async {
        let port = free_port();
        let spec = WorkerSpec::new("node")
            .args(["-r", PRELOAD, PLAIN_HTTP])
            .env("PORT", port.to_string());
        let sup = timers(Supervisor::builder().pool(Pool::default_pool(spec).workers(1)))
            .contain_descendants(false)
            .start()
            .await
            .expect("the worker says ready once its server listens");
        let pid = health(&sup).await[0].pid;
        let (status, body) = get(SocketAddr::from(([127, 0, 0, 1], port))).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(pid_of(&body), pid);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn outside_nanny_the_preload_is_inert_and_the_server_binds_its_port() {
    guard(async {
        let port = free_port();
        let mut child = tokio::process::Command::new("node")
            .args(["-r", PRELOAD, PLAIN_HTTP])
            .env("PORT", port.to_string())
            .env_remove("NANNY_FD")
            .env_remove("NANNY_NODE_CHANNEL")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("the script listens", || async {
            TcpStream::connect(addr).await.is_ok()
        })
        .await;
        let (status, body) = get(addr).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(pid_of(&body), child.id().expect("running"));
        child.kill().await.expect("kill the script");
    })
    .await;
}
