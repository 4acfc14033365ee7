//! Upgrading nanny without dropping a connection (SIGUSR2): a constant
//! stream of connections through a balanced listener across the upgrade,
//! and an upgrade to a bad file that leaves the old nanny serving.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::*;

/// Two `conn-echo` workers behind a balanced listener named `web`.
fn echo_config(test: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[[pool]]
name = "echo"
command = "{}"
workers = 2
env = {{ TEST_MODE = "conn-echo" }}

[[listener]]
name = "web"
tcp = "127.0.0.1:0"
pool = "echo"

[[listener]]
name = "local"
unix = "echo.sock"
pool = "echo"
"#,
        test_worker().display()
    );
    config(test, &text)
}

/// The port of the running nanny's first listener.
fn listener_port(file: &Path) -> u16 {
    let (_, status) = Api::of(file).get("/v1/status");
    let addr = status["listeners"][0]["addr"]["tcp"]
        .as_str()
        .expect("a TCP listener");
    addr.parse::<std::net::SocketAddr>().expect("an address").port()
}

/// One connection, one line echoed back; why not, if it failed.
fn echo(port: u16, line: &str) -> Result<(), String> {
    let conn = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    exchange(conn, line)
}

/// One line echoed back over the Unix listener at `path`.
fn echo_unix(path: &Path, line: &str) -> Result<(), String> {
    let conn = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    exchange(conn, line)
}

fn exchange<S: std::io::Read + Write>(mut conn: S, line: &str) -> Result<(), String> {
    conn.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    BufReader::new(conn)
        .read_line(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    match answer.trim_end().split_once(' ') {
        Some((_, echoed)) if echoed == line => Ok(()),
        _ => Err(format!("not the echo of {line:?}: {answer:?}")),
    }
}

/// A client connecting in a loop until stopped: connections served, and
/// the failures.
struct Load {
    served: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(port: u16) -> Load {
        let served: Arc<AtomicU64> = Arc::default();
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (s, f, halt) = (Arc::clone(&served), Arc::clone(&failures), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for i in 0u64.. {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                match echo(port, &format!("n{i}")) {
                    Ok(()) => s.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        f.lock().unwrap().push(e);
                        0
                    }
                };
            }
        });
        Load {
            served,
            failures,
            stop,
            thread,
        }
    }

    /// Waits until `more` connections past now were served.
    fn wait_for(&self, more: u64, what: &str) {
        let target = self.served.load(Ordering::Relaxed) + more;
        within(
            || (self.served.load(Ordering::Relaxed) >= target).then_some(()),
            what,
        );
    }

    /// Stops; the failures.
    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.failures.lock().unwrap().clone()
    }
}

/// `pid`'s state letter and parent, from `/proc/PID/stat`.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Stops a nanny that is not this test's child, like any nanny; its
/// parent (init, or a subreaper) reaps it.
fn stop_reparented(pid: u32) {
    Nanny::signal_pid(pid, "TERM");
    within(
        || state_and_parent(pid).is_none_or(|(s, _)| s == 'Z').then_some(()),
        "the new nanny to stop",
    );
}

#[test]
fn sigusr2_hands_every_socket_to_a_new_nanny_without_a_failed_connection() {
    let file = echo_config("upgrade");
    let mut old = Nanny::start(&["run"], &file);
    let port = listener_port(&file);
    let old_pid = old.pid();
    let old_workers = children(old_pid);
    assert_eq!(old_workers.len(), 2, "{old_workers:?}");
    let token = Api::of(&file).token;
    let load = Load::start(port);
    load.wait_for(20, "connections through the old nanny");

    old.signal("USR2");
    let new_pid = within(
        || {
            let pid = discovery(&file)["pid"].as_u64()? as u32;
            (pid != old_pid).then_some(pid)
        },
        "api.json to name the new nanny",
    );
    let status = within(|| old.exited(), "the old nanny to exit");
    assert_eq!(status.code(), Some(0), "{}", old.stderr());
    for (pid, _) in &old_workers {
        within(|| (!alive(*pid)).then_some(()), "the old workers to be gone");
    }
    // The new nanny runs, re-parented (not a zombie child of the old one),
    // with its own two workers, and serves on the same port and API.
    let (state, parent) = state_and_parent(new_pid).expect("the new nanny runs");
    assert!(
        state != 'Z' && parent != old_pid,
        "state {state}, parent {parent}"
    );
    within(
        || (children(new_pid).len() == 2).then_some(()),
        "the new nanny's workers",
    );
    load.wait_for(20, "connections through the new nanny");
    let failures = load.stop();
    assert!(
        failures.is_empty(),
        "failed connections across the upgrade: {failures:?}"
    );
    let api = Api::of(&file);
    assert_eq!(api.token, token, "the generated token is kept");
    let (code, body) = api.get("/v1/workers");
    assert_eq!(code, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
    let stderr = old.stderr();
    assert!(stderr.contains("SIGUSR2: upgrading"), "{stderr}");
    // The Unix listener's file stayed for the new nanny, which removes it
    // at its stop.
    let sock = file.parent().unwrap().join("echo.sock");
    echo_unix(&sock, "unix").expect("the Unix listener serves after the upgrade");

    stop_reparented(new_pid);
    assert!(!sock.exists(), "the new nanny removed {}", sock.display());
}

#[test]
fn an_upgrade_to_a_bad_file_leaves_the_old_nanny_serving() {
    let file = echo_config("upgrade-bad");
    let old = Nanny::start(&["run"], &file);
    let port = listener_port(&file);
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\n[supervisor]\nno_such_key = 1\n")).unwrap();
    old.signal("USR2");
    within(
        || old.stderr().contains("upgrade failed").then_some(()),
        "the failure to be logged",
    );
    let stderr = old.stderr();
    assert!(stderr.contains("exited before it was ready"), "{stderr}");
    assert!(
        stderr.contains("no_such_key"),
        "the new nanny says what is wrong: {stderr}"
    );
    echo(port, "still").expect("the old nanny serves");
    assert_eq!(discovery(&file)["pid"].as_u64(), Some(u64::from(old.pid())));
    // A second upgrade is possible after a failed one: to a file whose new
    // pool cannot get ready, so the new nanny fails after it took the
    // token; the old one's token stays the one in the token file. The pool
    // speaks the protocol (`false` exits before its hello): a plain one is
    // ready once it runs, so its exit could come after the new nanny said
    // ready, and that nanny would run on with the slot parked.
    std::fs::write(
        &file,
        format!("{good}\n[[pool]]\nname = \"broken\"\ncommand = \"false\"\nrespawn_count = 0\n"),
    )
    .unwrap();
    old.signal("USR2");
    within(
        || (old.stderr().matches("upgrade failed").count() == 2).then_some(()),
        "the second failure to be logged",
    );
    assert!(old.stderr().contains("exit status: 69"), "{}", old.stderr());
    let (code, _) = Api::of(&file).get("/v1/status");
    assert_eq!(code, 200, "the token file still holds the old nanny's token");
    echo(port, "again").expect("the old nanny serves");
    old.signal("TERM");
    let (status, stderr) = old.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
