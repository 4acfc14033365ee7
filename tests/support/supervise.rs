//! The fixture's `supervise` mode (`nanny-test-worker supervise N …`): a
//! supervisor in a process of its own, for what a test must do to the
//! supervisor's process itself (SIGKILL, SIGTERM, SIGSTOP).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{is_dead, proc_ppid, wait_until, within, WORKER};

/// The fixture's `supervise` mode, running: a supervisor in a process of its own.
pub(crate) struct Supervise {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// Its commands' input (see `command` in the fixture); `None` for a
    /// supervisor that handles signals.
    stdin: Option<tokio::process::ChildStdin>,
    pub(crate) pid: u32,
    pub(crate) workers: Vec<u32>,
    /// `STALLED <worker>` lines seen so far.
    pub(crate) stalled: Vec<String>,
}

impl Supervise {
    /// Starts `supervise n [signals]` with workers in `mode`; returns once it said READY.
    pub(crate) async fn start(n: usize, signals: bool, mode: &str) -> Self {
        let signals: &[&str] = if signals { &["signals"] } else { &[] };
        Self::with(n, mode, signals).await
    }

    /// Starts `supervise n ARGS…` (`signals`, `pulse-ms=…`, `unhealthy-ms=…`,
    /// `max-restarts=…`, `title=…`) with workers in `mode`; returns once it said READY.
    pub(crate) async fn with(n: usize, mode: &str, args: &[&str]) -> Self {
        Self::with_env(n, mode, args, &[]).await
    }

    /// [`with`](Self::with), with more environment for the supervisor
    /// (and so its workers).
    pub(crate) async fn with_env(n: usize, mode: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = tokio::process::Command::new(WORKER);
        cmd.args(["supervise", &n.to_string()]).args(args);
        cmd.envs(env.iter().copied());
        let signals = args.contains(&"signals");
        let mut child = cmd
            .env("TEST_MODE", mode)
            .stdin(if signals { Stdio::null() } else { Stdio::piped() })
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run the supervise mode");
        let pid = child.id().expect("a pid");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stdin = child.stdin.take();
        let mut me = Self {
            child,
            lines,
            stdin,
            pid,
            workers: Vec::new(),
            stalled: Vec::new(),
        };
        loop {
            let line = me.next_line().await;
            match line.strip_prefix("PID ") {
                Some(pid) => me.workers.push(pid.parse::<u32>().expect("a pid")),
                None if line == "READY" => break,
                None => panic!("unexpected line {line:?}"),
            }
        }
        assert_eq!(me.workers.len(), n);
        for &w in &me.workers {
            assert!(!is_dead(w));
            assert_eq!(proc_ppid(w), Some(pid), "worker {w} is the supervisor's child");
        }
        me
    }

    pub(crate) async fn next_line(&mut self) -> String {
        within("the supervise mode's output", self.lines.next_line())
            .await
            .expect("read stdout")
            .expect("a line before the end of output")
    }

    /// Sends one command line.
    pub(crate) async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("a supervisor that takes commands");
        let line = format!("{line}\n");
        within(
            "a command to the supervise mode",
            stdin.write_all(line.as_bytes()),
        )
        .await
        .expect("write a command");
    }

    /// Reads lines until one starts with `prefix` (noting `STALLED` lines
    /// on the way in [`stalled`](Self::stalled)); returns the rest of it.
    pub(crate) async fn until(&mut self, prefix: &str) -> String {
        loop {
            let line = self.next_line().await;
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
            match line.strip_prefix("STALLED ") {
                Some(worker) => self.stalled.push(worker.to_owned()),
                None => panic!("expected {prefix:?}, got {line:?}"),
            }
        }
    }

    /// Sends `counts` and returns the answer as `key → value`.
    pub(crate) async fn counts(&mut self) -> std::collections::BTreeMap<String, u64> {
        self.send("counts").await;
        parse_counts(&self.until("COUNTS").await)
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal).expect("signal");
    }

    pub(crate) async fn wait(&mut self) -> std::process::ExitStatus {
        within("the supervise mode's exit", self.child.wait())
            .await
            .unwrap()
    }

    pub(crate) async fn assert_workers_dead(&self) {
        // Reaped by their supervisor, or reparented to init (or a subreaper):
        // dead means gone, or a zombie.
        wait_until("every worker of the supervisor is dead", || async {
            self.workers.iter().all(|&pid| is_dead(pid))
        })
        .await;
    }
}

/// `key=value` words, e.g. `ok=3 timeout=0`, as a map.
pub(crate) fn parse_counts(line: &str) -> std::collections::BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}
