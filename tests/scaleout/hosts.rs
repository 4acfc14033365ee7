//! The hosts of the multi-host tests: `nanny-test-worker host …` processes
//! (the fixture's `host` mode: a supervisor with a Redis queue, its own
//! workers and a caller), each in a process group of its own, sharing one
//! `redis-server`, one namespace and one exec log.
//!
//! A [`Host`] captures its stdout line by line (`PID`, `READY`, `OUTCOME`,
//! `STATS`, `DONE`, `STOPPED`), is driven on stdin (`go`, `stats`), is
//! signalled for real (SIGKILL, SIGSTOP, SIGCONT to its supervisor's group
//! and to each worker's, since nanny puts every worker in a group of its
//! own), and is reaped: [`Host::kill`] and [`Host::stop`] wait for the
//! supervisor's exit and for every worker's death. A [`Cluster`] is the
//! three hosts of a test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::redis_server::RedisServer;
use crate::support::jobs::{unix_ms, Mark, Outcome};
use crate::support::{is_dead, parse_counts, wait_until, within, PATIENCE, WORKER};

/// The queue's timers in every test: short, so a reclaim takes about a
/// second (heartbeat 250 ms, `min_idle` 1 s, janitor 250 ms).
const TIMERS: [&str; 3] = ["heartbeat-ms=250", "min-idle-ms=1000", "janitor-ms=250"];

/// One host's settings (the `host` mode's `KEY=VALUE`s); `Default` is a
/// host with 2 workers at concurrency 4 and no caller.
#[derive(Debug, Clone)]
pub(crate) struct HostSpec {
    pub(crate) name: &'static str,
    pub(crate) workers: u64,
    pub(crate) concurrency: u64,
    /// Requests of its caller (0: no caller), tokens `base..base + calls`.
    pub(crate) calls: u64,
    pub(crate) base: u64,
    pub(crate) inflight: u64,
    /// Each job sleeps `ms` plus up to `spread_ms` (see `job_ms`).
    pub(crate) ms: u64,
    pub(crate) spread_ms: u64,
    /// `(n, ms)`: every `n`-th token's job sleeps `ms` instead.
    pub(crate) long: Option<(u64, u64)>,
    pub(crate) retries: u64,
    pub(crate) deadline_ms: u64,
    pub(crate) reply_ttl_ms: Option<u64>,
}

impl Default for HostSpec {
    fn default() -> Self {
        HostSpec {
            name: "host",
            workers: 2,
            concurrency: 4,
            calls: 0,
            base: 0,
            inflight: 32,
            ms: 100,
            spread_ms: 100,
            long: None,
            retries: 3,
            deadline_ms: 30_000,
            reply_ttl_ms: None,
        }
    }
}

impl HostSpec {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("name={}", self.name),
            format!("workers={}", self.workers),
            format!("concurrency={}", self.concurrency),
            format!("calls={}", self.calls),
            format!("base={}", self.base),
            format!("inflight={}", self.inflight),
            format!("ms={}", self.ms),
            format!("spread-ms={}", self.spread_ms),
            format!("retries={}", self.retries),
            format!("deadline-ms={}", self.deadline_ms),
        ];
        args.extend(self.reply_ttl_ms.map(|ms| format!("reply-ttl-ms={ms}")));
        if let Some((every, ms)) = self.long {
            args.extend([format!("long-every={every}"), format!("long-ms={ms}")]);
        }
        args.extend(TIMERS.iter().map(|t| t.to_string()));
        args
    }

    /// The tokens of its caller.
    pub(crate) fn tokens(&self) -> std::ops::Range<u64> {
        self.base..self.base + self.calls
    }
}

/// A running `host` process.
pub(crate) struct Host {
    pub(crate) spec: HostSpec,
    /// The supervisor's pid, which is its process group's id.
    pub(crate) pid: u32,
    /// Its workers' pids when it said `READY` (each its own group's id).
    pub(crate) workers: Vec<u32>,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    /// Every stdout line so far.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Starts a host on `url`'s Redis, namespace `ns`, exec log `log`;
    /// returns once it said `READY`.
    pub(crate) async fn start(url: &str, ns: &str, log: &Path, spec: HostSpec) -> Host {
        let mut cmd = tokio::process::Command::new(WORKER);
        cmd.arg("host")
            .arg(format!("url={url}"))
            .arg(format!("ns={ns}"))
            .arg(format!("exec-log={}", log.display()))
            .args(spec.args())
            .env_remove("TEST_MODE")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("run the host mode");
        let pid = child.id().expect("a pid");
        let stdin = child.stdin.take().expect("its stdin");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut out = BufReader::new(child.stdout.take().expect("its stdout")).lines();
        let seen = Arc::clone(&lines);
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                seen.lock().unwrap().push(line);
            }
        });
        let mut host = Host {
            spec,
            pid,
            workers: Vec::new(),
            child,
            stdin,
            lines,
        };
        let what = format!("host {} says READY (or exits)", host.spec.name);
        let ready = || host.has_line(|l| l == "READY");
        wait_until(&what, || async { ready() || is_dead(pid) }).await;
        assert!(
            ready(),
            "host {} exited before READY: {:?}",
            host.spec.name,
            host.lines()
        );
        host.workers = host
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("PID ")?.parse().ok())
            .collect();
        assert_eq!(
            host.workers.len() as u64,
            host.spec.workers,
            "{}: a PID line per worker",
            host.spec.name
        );
        host
    }

    /// The stdout lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn has_line(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| pred(l))
    }

    async fn send(&mut self, command: &str) {
        let line = format!("{command}\n");
        within("a command to a host", self.stdin.write_all(line.as_bytes()))
            .await
            .expect("write to a host's stdin");
    }

    /// Starts its caller.
    pub(crate) async fn go(&mut self) {
        self.send("go").await;
    }

    /// Its `OUTCOME` lines so far.
    pub(crate) fn outcomes(&self) -> Vec<Outcome> {
        self.lines().iter().filter_map(|l| Outcome::parse(l)).collect()
    }

    /// Waits until its caller printed at least `n` outcomes.
    pub(crate) async fn wait_outcomes(&self, n: usize) {
        let what = format!("{} outcomes from host {}", n, self.spec.name);
        wait_until(&what, || async { self.outcomes().len() >= n }).await;
    }

    /// Whether its caller is done (printed `DONE`).
    pub(crate) fn is_done(&self) -> bool {
        self.has_line(|l| l == "DONE")
    }

    /// Waits until its caller is done; returns its outcomes.
    pub(crate) async fn wait_done(&self) -> Vec<Outcome> {
        let what = format!("host {}'s caller is done", self.spec.name);
        wait_until(&what, || async { self.is_done() }).await;
        self.outcomes()
    }

    /// Asks for its `QueueStats` now (`key → value`).
    pub(crate) async fn stats(&mut self) -> BTreeMap<String, u64> {
        let before = self.stats_lines().len();
        self.send("stats").await;
        let what = format!("a STATS line from host {}", self.spec.name);
        wait_until(&what, || async { self.stats_lines().len() > before }).await;
        parse_counts(self.stats_lines().last().expect("a STATS line"))
    }

    /// Waits until its `QueueStats` say `connected` (after Redis
    /// restarted); returns them.
    pub(crate) async fn wait_connected(&mut self) -> BTreeMap<String, u64> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stats = self.stats().await;
            if stats.get("connected") == Some(&1) {
                return stats;
            }
            let name = self.spec.name;
            assert!(
                tokio::time::Instant::now() < deadline,
                "host {name} reconnects to Redis"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn stats_lines(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| Some(l.strip_prefix("STATS ")?.to_owned()))
            .collect()
    }

    /// Sends `signal` to the supervisor's group and to each worker's: the
    /// whole host at once, as a host's crash or pause would hit it.
    pub(crate) fn signal(&self, signal: Signal) {
        killpg(Pid::from_raw(self.pid as i32), signal).expect("signal a host's group");
        for &w in &self.workers {
            // A worker that is gone already (reaped) is not an error.
            let _ =
                killpg(Pid::from_raw(w as i32), signal).or_else(|_| kill(Pid::from_raw(w as i32), signal));
        }
    }

    /// Sends `signal` to the supervisor's process group only: its workers,
    /// each in a group of its own, run on.
    pub(crate) fn signal_supervisor(&self, signal: Signal) {
        killpg(Pid::from_raw(self.pid as i32), signal).expect("signal a host's group");
    }

    /// SIGKILLs the whole host, reaps the supervisor and waits for every
    /// worker's death; returns when it was killed (Unix ms).
    pub(crate) async fn kill(&mut self) -> u64 {
        let at = unix_ms();
        self.signal(Signal::SIGKILL);
        let status = within("a killed host's exit", self.child.wait())
            .await
            .expect("wait a host");
        assert!(!status.success(), "{}: a SIGKILLed host fails", self.spec.name);
        self.assert_workers_dead().await;
        at
    }

    /// SIGTERMs the supervisor (a soft kill) and waits for its clean exit
    /// and every worker's death.
    pub(crate) async fn stop(mut self) {
        kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM).expect("SIGTERM a host");
        let status = within("a host's soft kill", self.child.wait())
            .await
            .expect("wait a host");
        assert!(
            status.success(),
            "{}: a soft-killed host exits 0, not {status}",
            self.spec.name
        );
        // Its last lines may still be in the pipe when `wait` returns: the
        // task that reads them runs apart.
        let what = format!("{}: STOPPED before its exit", self.spec.name);
        wait_until(&what, || async { self.has_line(|l| l == "STOPPED") }).await;
        self.assert_workers_dead().await;
    }

    async fn assert_workers_dead(&self) {
        let what = format!("every worker of host {} is dead", self.spec.name);
        wait_until(&what, || async { self.workers.iter().all(|&w| is_dead(w)) }).await;
    }
}

/// The hosts of one test: one Redis, one namespace, one exec log.
pub(crate) struct Cluster {
    pub(crate) ns: String,
    /// The exec log every host's workers append to.
    pub(crate) log: PathBuf,
    pub(crate) hosts: Vec<Host>,
}

impl Cluster {
    /// Starts every host (one after the other, each `READY` before the
    /// next), in namespace `ns` on `redis`; the exec log goes in the
    /// server's folder.
    pub(crate) async fn start(redis: &RedisServer, ns: &str, specs: Vec<HostSpec>) -> Cluster {
        let log = redis.dir().join(format!("{ns}.exec.log"));
        let mut hosts = Vec::new();
        for spec in specs {
            hosts.push(Host::start(&redis.url(), ns, &log, spec).await);
        }
        Cluster {
            ns: ns.to_owned(),
            log,
            hosts,
        }
    }

    /// Starts every host's caller.
    pub(crate) async fn go(&mut self) {
        for host in self.hosts.iter_mut().filter(|h| h.spec.calls > 0) {
            host.go().await;
        }
    }

    /// The hosts that call.
    pub(crate) fn callers(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.spec.calls > 0)
    }

    /// The host called `name`.
    pub(crate) fn host(&mut self, name: &str) -> &mut Host {
        self.hosts
            .iter_mut()
            .find(|h| h.spec.name == name)
            .expect("a host of that name")
    }

    /// Removes the host called `name` (to kill it and keep its record).
    pub(crate) fn take(&mut self, name: &str) -> Host {
        let at = self
            .hosts
            .iter()
            .position(|h| h.spec.name == name)
            .expect("a host of that name");
        self.hosts.remove(at)
    }

    /// The exec log's lines so far.
    pub(crate) fn marks(&self) -> Vec<Mark> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // A line being written as this reads may be cut short: whole lines only.
        let whole = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        let marks: Vec<Mark> = whole.clone().filter_map(Mark::parse).collect();
        assert_eq!(marks.len(), whole.count(), "every exec-log line parses");
        marks
    }

    /// Soft-kills every host left, and reaps them.
    pub(crate) async fn stop(self) {
        for host in self.hosts {
            host.stop().await;
        }
    }
}
