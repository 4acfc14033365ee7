//! Readiness probes: how the supervisor learns that a new worker can serve
//! when the worker cannot say so itself, or as a second condition when it
//! can. Set one per pool with [`Pool::readiness`](crate::Pool::readiness).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use nanny::{Listener, Pool, Readiness, Supervisor, WorkerSpec};
//!
//! // An unmodified server, socket-activated, ready once it answers 2xx
//! // (one worker: the probe can only reach that one).
//! let supervisor = Supervisor::builder()
//!     .pool(
//!         Pool::new("web", WorkerSpec::new("./server").plain())
//!             .workers(1)
//!             .readiness(Readiness::http(([127, 0, 0, 1], 8080), "/healthz")),
//!     )
//!     .listen(Listener::tcp(([127, 0, 0, 1], 8080)).pool("web").socket_activation())
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # When a worker is ready
//!
//! * A **plain** worker ([`WorkerSpec::plain`](crate::WorkerSpec::plain)):
//!   when its probe passes. Without one it is ready as soon as it runs (the
//!   exec succeeded: systemd's `Type=exec`), i.e. [`Readiness::delay`] of
//!   zero.
//! * A **protocol** worker: when it said `Ready` *and* its probe passed, in
//!   either order; without a probe, when it said `Ready`.
//!
//! Either way a worker that is not ready within
//! [`Builder::start_timeout`](crate::Builder::start_timeout) (counted from
//! its spawn) is stopped and counts as a failed start. Make-before-break
//! replacements (recycling) wait for the same readiness before the old
//! worker drains.
//!
//! # How a probe runs
//!
//! One task per starting worker, on the supervisor's task tracker: it
//! tries, waits (10 ms, doubling up to 200 ms), tries again, each attempt
//! bounded by what is left of the start timeout. It ends when the probe
//! passes, when the start timeout passes, or when its worker goes (exits,
//! or the supervisor stops), whichever comes first. A probe only decides
//! when a worker *starts* serving; health afterwards is the heartbeat's and
//! [`Builder::is_healthy`](crate::Builder::is_healthy)'s business.
//!
//! # A probe and a shared socket
//!
//! A probe connects to an address, not to a worker. Against a
//! socket-activated listener it reaches the socket all the pool's workers
//! share: a TCP connect succeeds as soon as the supervisor has bound it
//! (the kernel completes the handshake), and an HTTP request is answered by
//! whichever worker accepts it. To learn about *one* worker, probe an
//! address only it serves (e.g. a port derived from `PROCESS_LOGICAL_ID`),
//! or use a delay.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a pool's new workers are found ready (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a probe does nothing until given to Pool::readiness"]
pub struct Readiness {
    pub(crate) probe: Probe,
}

/// The kinds of probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A TCP connect succeeds.
    Tcp(SocketAddr),
    /// `GET path` answers with a 2xx status.
    Http { addr: SocketAddr, path: String },
    /// The worker stayed up this long.
    Delay(Duration),
}

impl Readiness {
    /// Ready once a TCP connection to `addr` succeeds.
    pub fn tcp(addr: impl Into<SocketAddr>) -> Self {
        Self {
            probe: Probe::Tcp(addr.into()),
        }
    }

    /// Ready once `GET path` on `addr` answers with a `2xx` status
    /// (HTTP/1.1, `Connection: close`; only the status line is read). The
    /// path starts with `/` and holds no whitespace or control characters
    /// ([`ConfigError::ReadinessPath`](crate::ConfigError::ReadinessPath)).
    pub fn http(addr: impl Into<SocketAddr>, path: impl Into<String>) -> Self {
        Self {
            probe: Probe::Http {
                addr: addr.into(),
                path: path.into(),
            },
        }
    }

    /// Ready once the worker has been up for `delay`. Must be under
    /// [`Builder::start_timeout`](crate::Builder::start_timeout)
    /// ([`ConfigError::ReadinessDelay`](crate::ConfigError::ReadinessDelay)).
    pub fn delay(delay: Duration) -> Self {
        Self {
            probe: Probe::Delay(delay),
        }
    }

    /// What a plain pool without a probe uses: ready once it runs.
    pub(crate) fn alive() -> Self {
        Self::delay(Duration::ZERO)
    }

    /// One attempt; true if it passed. The caller bounds its time.
    pub(crate) async fn attempt(&self) -> bool {
        match &self.probe {
            Probe::Tcp(addr) => TcpStream::connect(addr).await.is_ok(),
            Probe::Http { addr, path } => http_ok(*addr, path).await,
            Probe::Delay(_) => true,
        }
    }

    /// The delay before the first attempt (a delay probe's whole wait).
    pub(crate) fn initial_wait(&self) -> Duration {
        match &self.probe {
            Probe::Delay(d) => *d,
            _ => Duration::ZERO,
        }
    }

    /// Whether an HTTP probe's path is one we can send as is.
    pub(crate) fn valid_path(&self) -> Result<(), &str> {
        match &self.probe {
            Probe::Http { path, .. }
                if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Err(path)
            }
            _ => Ok(()),
        }
    }
}

/// Sends `GET path` and reads the status line: true for `HTTP/1.x 2xx`.
async fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: nanny\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // "HTTP/1.1 200": 12 bytes decide it.
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    is_2xx(&head)
}

/// Whether a status line starts `HTTP/1.<d> 2<d><d>`.
fn is_2xx(head: &[u8; 12]) -> bool {
    head.starts_with(b"HTTP/1.")
        && head[8] == b' '
        && head[9] == b'2'
        && head[10..12].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_status_lines_pass() {
        assert!(is_2xx(b"HTTP/1.1 200"));
        assert!(is_2xx(b"HTTP/1.0 204"));
        assert!(!is_2xx(b"HTTP/1.1 503"));
        assert!(!is_2xx(b"HTTP/1.1 2x0"));
        assert!(!is_2xx(b"SSH-2.0-Open"));
    }

    #[test]
    fn http_paths_are_checked() {
        let addr = ([127, 0, 0, 1], 1);
        assert!(Readiness::http(addr, "/healthz?full=1").valid_path().is_ok());
        assert!(Readiness::http(addr, "healthz").valid_path().is_err());
        assert!(Readiness::http(addr, "/a b").valid_path().is_err());
        assert!(Readiness::http(addr, "/a\r\nX: y").valid_path().is_err());
        assert!(Readiness::tcp(addr).valid_path().is_ok());
    }

    #[tokio::test]
    async fn an_http_probe_reads_the_status_of_a_real_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"GET /ready HTTP/1.1\r\n"));
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let probe = Readiness::http(addr, "/ready");
        assert!(!probe.attempt().await, "503 is not ready");
        assert!(probe.attempt().await, "200 is ready");
        server.await.unwrap();
    }
}
