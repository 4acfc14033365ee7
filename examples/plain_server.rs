//! A tiny HTTP server that knows nothing of nanny: it understands only
//! socket activation (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, as
//! systemd passes them) and answers every connection with one fixed
//! response whose body names its pid (as the host sees it, and as it sees
//! it: they differ in a PID namespace) and what it was passed. It exits on
//! SIGTERM (the default action). The integration tests run it as a plain
//! worker; by hand:
//!
//! ```text
//! systemd-socket-activate -l 127.0.0.1:8080 target/debug/examples/plain_server
//! curl http://127.0.0.1:8080/
//! ```
//!
//! Two switches for the tests, both off by default:
//! * `PLAIN_GATE=<path>`: until that file exists, answer `503` (so an HTTP
//!   readiness probe fails), or with `PLAIN_LISTEN`, do not listen yet;
//! * `PLAIN_LISTEN=<addr>`: listen on this address itself instead of
//!   taking fd 3 (for a TCP readiness probe of a port that opens late).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The first socket-activated fd (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// This process's pid in the host's `/proc` (nanny's `nanny_worker::pid`
/// does the same; this program knows nothing of nanny).
fn host_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|l| l.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

fn main() {
    let gate = std::env::var_os("PLAIN_GATE");
    let open = || gate.as_ref().is_none_or(|g| Path::new(g).exists());
    let listener = match std::env::var("PLAIN_LISTEN") {
        Ok(addr) => {
            while !open() {
                std::thread::sleep(Duration::from_millis(10));
            }
            TcpListener::bind(addr).expect("bind PLAIN_LISTEN")
        }
        Err(_) => match activated() {
            Some(l) => l,
            None => {
                eprintln!("plain_server: no socket passed (LISTEN_FDS / LISTEN_PID)");
                std::process::exit(1);
            }
        },
    };
    let body = format!(
        "pid={} own_pid={} listen_pid={} listen_fds={} listen_fdnames={}\n",
        host_pid(),
        std::process::id(),
        var("LISTEN_PID"),
        var("LISTEN_FDS"),
        var("LISTEN_FDNAMES"),
    );
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let status = if open() {
            "200 OK"
        } else {
            "503 Service Unavailable"
        };
        let _ = answer(conn, status, &body);
    }
}

/// fd 3, if socket activation passed it to this very process.
fn activated() -> Option<TcpListener> {
    let for_us = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if !for_us || fds < 1 {
        return None;
    }
    use std::os::fd::FromRawFd;
    #[allow(unsafe_code)]
    // SAFETY: by the socket activation contract (`sd_listen_fds(3)`), with
    // LISTEN_PID naming this process and LISTEN_FDS ≥ 1, fd 3 is a
    // listening socket handed to us to own; nothing else in this program
    // uses fd 3.
    let listener = unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) };
    Some(listener)
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Reads the request head, then writes the response and closes.
fn answer(conn: TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
