//! Helpers for plain workers: the `plain_server` example (a program that
//! knows only socket activation), free ports, and a one-shot HTTP GET.

use std::net::SocketAddr;
use std::path::PathBuf;

use nanny::WorkerSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `examples/plain_server`, a program that knows only socket activation.
pub(crate) fn plain_server_path() -> PathBuf {
    example_path("plain_server")
}

/// An example of the root package, which cargo builds before it runs the
/// tests: the test binary is `<target>/<profile>/deps/<name>-<hash>`, the
/// example `<target>/<profile>/examples/<name>`.
pub(crate) fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("<target>/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// The plain server as a plain worker.
pub(crate) fn plain_server() -> WorkerSpec {
    WorkerSpec::new(plain_server_path()).plain()
}

/// A plain program that stays up and does nothing (`sh` execs `sleep`);
/// with `ignore_term`, SIGTERM is ignored (the disposition survives exec).
pub(crate) fn sleeper(ignore_term: bool) -> WorkerSpec {
    let script = if ignore_term {
        "trap '' TERM; exec sleep 600"
    } else {
        "exec sleep 600"
    };
    WorkerSpec::new("/bin/sh").args(["-c", script]).plain()
}

/// A path for a `PLAIN_GATE` file, unique to this test process and `tag`
/// (removed if it exists).
pub(crate) fn gate_path(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("nanny-gate-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A loopback port nothing listens on now (bound and released: the
/// kernel picks ephemeral ports at random, so another test taking it
/// meanwhile is unlikely). For probes, which need the port before spawn.
pub(crate) fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address")
}

/// `GET /` on `addr`: the status code and the body.
pub(crate) async fn http_get(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

/// A field `key=value` of the plain server's body.
pub(crate) fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {body:?}"))
}

/// The open descriptors of process `pid`, by number.
pub(crate) fn open_fds(pid: u32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the worker's fd table")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// Descriptors of this process without close-on-exec: every child
/// inherits them, whatever the supervisor does (e.g. what the test
/// harness itself was started with).
pub(crate) fn inheritable_fds() -> Vec<i32> {
    const O_CLOEXEC: u32 = 0o2_000_000;
    let mut out: Vec<i32> = std::fs::read_dir("/proc/self/fdinfo")
        .expect("/proc/self/fdinfo")
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(e.path()).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            let flags = u32::from_str_radix(flags, 8).ok()?;
            (flags & O_CLOEXEC == 0).then_some(fd)
        })
        .collect();
    out.sort_unstable();
    out
}

/// The socket inode behind fd `fd` of process `pid` (`socket:[N]`).
pub(crate) fn socket_inode(pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode of the TCP socket listening on `addr` (IPv4), from `/proc/net/tcp`.
pub(crate) fn listening_inode(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V4(v4) = addr else { return None };
    let local = format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port());
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A"))
            .then(|| cols.get(9)?.parse().ok())?
    })
}
