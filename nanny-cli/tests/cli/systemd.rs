//! `nanny run` under systemd: notifications to `NOTIFY_SOCKET` (READY,
//! WATCHDOG, STOPPING) and nanny's own sockets from `LISTEN_FDS`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Receives notifications until one is `want`; every one received.
fn receive_until(socket: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    receive_matching(socket, |got| got == want, want, seen);
}

/// Receives notifications until one satisfies `wanted`; every one received.
fn receive_matching(
    socket: &UnixDatagram,
    wanted: impl Fn(&str) -> bool,
    what: &str,
    seen: &mut Vec<String>,
) {
    let mut buf = [0u8; 512];
    within(
        || {
            let n = socket.recv(&mut buf).ok()?;
            let got = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(got.clone());
            wanted(&got).then_some(())
        },
        what,
    );
}

/// `RELOADING=1` with a `MONOTONIC_USEC` of this boot's monotonic clock
/// (not after "now": the test reads the clock after it arrived).
fn is_reloading(got: &str) -> bool {
    let Some(usec) = got.strip_prefix("RELOADING=1\nMONOTONIC_USEC=") else {
        return false;
    };
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now = now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000;
    usec.parse::<u64>().is_ok_and(|u| u > 0 && u <= now)
}

#[test]
fn systemd_hears_ready_the_watchdog_reloads_then_stopping() {
    let text = "[[pool]]\nname = \"s\"\ncommand = \"sh\"\nargs = [\"-c\", \"echo notify=[$NOTIFY_SOCKET]; exec sleep 1000\"]\nplain = true\nworkers = 1\n";
    let file = config("notify", text);
    let path = file.parent().unwrap().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let nanny = Nanny::start_with_env(
        &["run"],
        &file,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "100000"),
        ],
    );
    let mut seen = Vec::new();
    receive_until(&socket, "READY=1", &mut seen);
    assert_eq!(seen, ["READY=1"], "nothing before READY");
    receive_until(&socket, "WATCHDOG=1", &mut seen);
    receive_until(&socket, "WATCHDOG=1", &mut seen);
    within(
        || nanny.stderr().contains("notify=[]").then_some(()),
        "the worker's line",
    );
    // A reload, then a refused one: each between RELOADING=1 and READY=1.
    for text in [text, "[[pool]]\nname = 3\n"] {
        std::fs::write(&file, text).unwrap();
        nanny.signal("HUP");
        receive_matching(
            &socket,
            is_reloading,
            "RELOADING=1 with MONOTONIC_USEC",
            &mut seen,
        );
        receive_until(&socket, "READY=1", &mut seen);
    }
    within(
        || nanny.stderr().contains("reload refused").then_some(()),
        "the refusal logged",
    );
    nanny.signal("TERM");
    receive_until(&socket, "STOPPING=1", &mut seen);
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn nanny_serves_on_the_sockets_systemd_passes_without_binding() {
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    // The file names an address this test holds: binding it would fail.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let text = format!(
        "[[pool]]\nname = \"echo\"\ncommand = \"{}\"\nworkers = 1\nenv = {{ TEST_MODE = \"conn-echo\" }}\n\n\
         [[listener]]\nname = \"web\"\ntcp = \"{}\"\npool = \"echo\"\n\n[api]\nlisten = \"{}\"\n",
        test_worker().display(),
        taken.local_addr().unwrap(),
        taken.local_addr().unwrap(),
    );
    let file = config("listen-fds", &text);
    let (web_fd, api_fd) = (web.as_raw_fd(), api.as_raw_fd());
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" run \"$1\""])
        .arg(env!("CARGO_BIN_EXE_nanny"))
        .arg(&file)
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "web:api")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec, only fcntl and dup2 on descriptors
    // this process holds open (no allocation, no lock).
    unsafe {
        command.pre_exec(move || place(web_fd, api_fd));
    }
    let nanny = Nanny::from_child(command.spawn().unwrap());
    let url = within(|| discovery(&file)["url"].as_str().map(str::to_owned), "api.json");
    assert_eq!(
        url,
        format!("http://{}", api.local_addr().unwrap()),
        "the API on systemd's socket"
    );
    let mut conn = TcpStream::connect(web.local_addr().unwrap()).unwrap();
    conn.write_all(b"hi\n").unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert!(
        line.ends_with(" hi\n"),
        "echoed through systemd's socket: {line:?}"
    );
    drop(conn); // an open connection would hold the drain
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// In the child: `web` at descriptor 3 and `api` at 4, inheritable.
fn place(web: RawFd, api: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    use std::os::fd::BorrowedFd;
    #[allow(unsafe_code)]
    // SAFETY: both are open in the child (inherited across fork); the
    // copies above 10 keep either from being overwritten by the other's
    // placement, and the placed descriptors are left to the exec.
    unsafe {
        let high = |fd: RawFd| fcntl(BorrowedFd::borrow_raw(fd), FcntlArg::F_DUPFD(10));
        let (web, api) = (high(web)?, high(api)?);
        let a = nix::unistd::dup2_raw(BorrowedFd::borrow_raw(web), 3)?;
        let b = nix::unistd::dup2_raw(BorrowedFd::borrow_raw(api), 4)?;
        std::mem::forget((a, b));
    }
    Ok(())
}
