//! The fixture's `supervise` mode (`nanny-test-worker supervise N …`): a
//! supervisor in a process of its own, for what a test must do to the
//! supervisor's process itself (SIGKILL, SIGTERM, SIGSTOP).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{is_dead, proc_ppid, wait_until, within, WORKER};

/// The fixture's `supervise` mode, running: a supervisor in a process of its own.
pub(crate) struct Supervise {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub(crate) pid: u32,
    pub(crate) workers: Vec<u32>,
}

impl Supervise {
    /// Starts `supervise n [signals]` with workers in `mode`; returns once it said READY.
    pub(crate) async fn start(n: usize, signals: bool, mode: &str) -> Self {
        let mut cmd = tokio::process::Command::new(WORKER);
        cmd.args(["supervise", &n.to_string()]);
        if signals {
            cmd.arg("signals");
        }
        let mut child = cmd
            .env("TEST_MODE", mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run the supervise mode");
        let pid = child.id().expect("a pid");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut me = Self {
            child,
            lines,
            pid,
            workers: Vec::new(),
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
