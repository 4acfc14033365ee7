//! The worker hosts of the scale-out bench: `nanny-test-worker host …
//! calls=0` processes (the fixture's `host` mode: a real supervisor with a
//! Redis queue and its own self-forked workers, no caller), one per host.
//!
//! [`WorkerHost::start`] returns once the host said `READY` (its workers'
//! pids are kept from its `PID` lines); [`WorkerHost::stop`] sends SIGTERM
//! (a soft kill: it hands back what it holds) and reaps it;
//! [`WorkerHost::kill`] SIGKILLs the supervisor and each of its workers by
//! pid, as a host loss. Drop kills what is still running. Every process
//! is signalled by its own pid, never by name.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The fixture: a worker, or with `host` a supervisor host.
pub(crate) const FIXTURE: &str = env!("CARGO_BIN_EXE_nanny-test-worker");

/// How long a host may take to say `READY`, or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// The queue's timers, the same on every host (and on the bench's caller).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub(crate) heartbeat: Duration,
    pub(crate) min_idle: Duration,
    pub(crate) janitor: Duration,
}

impl Timers {
    /// The configured reclaim bound: `min_idle + janitor`.
    pub(crate) fn bound(&self) -> Duration {
        self.min_idle + self.janitor
    }
}

/// One host's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) workers: usize,
    pub(crate) concurrency: usize,
}

/// A running worker host.
#[derive(Debug)]
pub(crate) struct WorkerHost {
    child: Option<Child>,
    workers: Vec<u32>,
}

impl WorkerHost {
    /// Starts host `name` on `url`'s Redis, namespace `ns`.
    pub(crate) fn start(url: &str, ns: &str, name: &str, shape: Shape, timers: Timers) -> WorkerHost {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut child = Command::new(FIXTURE)
            .arg("host")
            .arg(format!("url={url}"))
            .arg(format!("ns={ns}"))
            .arg(format!("name={name}"))
            .arg(format!("workers={}", shape.workers))
            .arg(format!("concurrency={}", shape.concurrency))
            .arg("calls=0")
            .arg(format!("heartbeat-ms={}", ms(timers.heartbeat)))
            .arg(format!("min-idle-ms={}", ms(timers.min_idle)))
            .arg(format!("janitor-ms={}", ms(timers.janitor)))
            .env_remove("TEST_MODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {FIXTURE} host: {e}"));
        let stdout = child.stdout.take().expect("the host's stdout");
        let mut host = WorkerHost {
            child: Some(child),
            workers: Vec::new(),
        };
        let mut out = BufReader::new(stdout);
        host.workers = ready(&mut out, name);
        // The rest (`STOPPED` at the end) is read and dropped, so the host
        // never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        assert_eq!(
            host.workers.len(),
            shape.workers,
            "host {name}: a PID line per worker"
        );
        host
    }

    /// The supervisor's pid and its workers' (as it started them).
    pub(crate) fn pids(&self) -> (Option<u32>, &[u32]) {
        (self.child.as_ref().map(Child::id), &self.workers)
    }

    /// SIGTERM (a soft kill), then waits for the host's exit.
    pub(crate) fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            signal(child.id(), Signal::SIGTERM);
            let deadline = Instant::now() + PATIENCE;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// SIGKILLs the supervisor and every worker it said it had, by pid;
    /// reaps the supervisor and waits until each worker is gone.
    pub(crate) fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), Signal::SIGKILL);
        for &w in &self.workers {
            signal(w, Signal::SIGKILL);
        }
        let _ = child.wait();
        let deadline = Instant::now() + PATIENCE;
        while self.workers.iter().any(|&w| alive(w)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for WorkerHost {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the host's stdout up to `READY`; gives its workers' pids.
fn ready(out: &mut impl BufRead, name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) => panic!("host {name} exited before READY"),
            Ok(_) => {}
            Err(e) => panic!("host {name}'s stdout: {e}"),
        }
        let line = line.trim_end();
        if line == "READY" {
            return pids;
        }
        if let Some(pid) = line.strip_prefix("PID ") {
            pids.push(pid.parse().expect("a pid"));
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Whether `pid` is still a process that is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}
