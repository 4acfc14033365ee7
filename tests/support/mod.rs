//! Helpers shared by the integration test binaries: the worker fixture,
//! builders with short timers, polling with deadlines (never a fixed sleep
//! for correctness), a per-test guard timeout, and an event collector.
#![allow(dead_code)] // each test binary uses a part

pub(crate) mod attachments;
pub(crate) mod cmd;
pub(crate) mod conformance;
pub(crate) mod conns;
pub(crate) mod jobs;
pub(crate) mod load;
pub(crate) mod mail;
pub(crate) mod plain;
pub(crate) mod procfs;
pub(crate) mod runtimes;
pub(crate) mod setups;
pub(crate) mod supervise;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use nanny::{Builder, Error, Event, Pool, Response, Stats, Supervisor, WorkerHealth, WorkerId, WorkerSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::task::JoinHandle;

#[allow(unused_imports)] // not every binary uses every name
pub(crate) use cmd::{Cmd, Whoami, FLOOD_DONE, GOT_SIGUSR1, PING, PONG, RELEASE, SERVE_LISTENER, SET_READY};
#[allow(unused_imports)]
pub(crate) use procfs::children_marked;
#[allow(unused_imports)]
pub(crate) use setups::*;
#[allow(unused_imports)]
pub(crate) use supervise::{parse_counts, Supervise};

/// The worker fixture (`tests/bin/test_worker/`).
pub(crate) const WORKER: &str = env!("CARGO_BIN_EXE_nanny-test-worker");

/// A test that has not finished after this is hung: it fails.
pub(crate) const GUARD: Duration = Duration::from_secs(90);

/// How long a polled condition may take to become true. Generous: the
/// machine is slow and tests run in parallel; only a failing test waits it out.
pub(crate) const PATIENCE: Duration = Duration::from_secs(45);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(10);

/// Runs a test body under [`GUARD`]: a hung test fails instead of hanging the suite.
pub(crate) async fn guard<F: Future>(body: F) -> F::Output {
    match tokio::time::timeout(GUARD, body).await {
        Ok(out) => out,
        Err(_) => panic!("test did not finish within {GUARD:?}"),
    }
}

/// The worker fixture in `mode` (see the `TEST_MODE` table of the fixture).
pub(crate) fn worker_spec(mode: &str) -> WorkerSpec {
    WorkerSpec::new(WORKER).env("TEST_MODE", mode)
}

/// A builder of one default pool of `n` workers of `spec`, with short timers.
pub(crate) fn builder_with(spec: WorkerSpec, n: usize) -> Builder {
    timers(Supervisor::builder().pool(Pool::default_pool(spec).workers(n)))
}

/// Short timers for tests: pulse 100 ms, restarts after 20 ms, a generous
/// start timeout and stop delay.
pub(crate) fn timers(b: Builder) -> Builder {
    b.pulse(Duration::from_millis(100))
        .restart_delay(Duration::from_millis(20))
        .start_timeout(Duration::from_secs(10))
        .force_stop_delay(Some(Duration::from_secs(10)))
}

/// [`builder_with`] normal workers.
pub(crate) fn builder(n: usize) -> Builder {
    builder_with(worker_spec("normal"), n)
}

/// A started supervisor of `n` normal workers.
pub(crate) async fn start(n: usize) -> Supervisor {
    builder(n).start().await.expect("supervisor starts")
}

/// Polls `cond` until it is true; panics after [`PATIENCE`].
pub(crate) async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` until it gives a value; panics after [`PATIENCE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Resolves `fut` within [`PATIENCE`] or panics: for calls that must not hang.
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not resolve within {PATIENCE:?}"),
    }
}

pub(crate) async fn stats(sup: &Supervisor) -> Stats {
    sup.stats().await.expect("stats of a running supervisor")
}

pub(crate) async fn health(sup: &Supervisor) -> Vec<WorkerHealth> {
    sup.health().await.expect("health of a running supervisor")
}

/// Waits until the pool has exactly `n` workers, all ready; returns them.
pub(crate) async fn all_ready(sup: &Supervisor, n: usize) -> Vec<WorkerHealth> {
    eventually(&format!("{n} ready workers"), || async {
        let h = health(sup).await;
        (h.len() == n && h.iter().all(|w| w.state == nanny::WorkerState::Ready)).then_some(h)
    })
    .await
}

/// Enqueues `cmd` on a task of its own.
pub(crate) fn spawn_enqueue(sup: &Supervisor, cmd: Cmd) -> JoinHandle<Result<Response, Error>> {
    let sup = sup.clone();
    tokio::spawn(async move { sup.enqueue(&cmd).await })
}

/// Enqueues `cmd` to `pool`.
pub(crate) async fn enqueue_to(sup: &Supervisor, pool: &str, cmd: &Cmd) -> Result<Response, Error> {
    sup.enqueue_with(cmd, nanny::EnqueueOptions::new().pool(pool))
        .await
}

/// [`enqueue_to`] on a task of its own.
pub(crate) fn spawn_enqueue_to(
    sup: &Supervisor,
    pool: &str,
    cmd: Cmd,
) -> JoinHandle<Result<Response, Error>> {
    let (sup, pool) = (sup.clone(), pool.to_owned());
    tokio::spawn(async move { enqueue_to(&sup, &pool, &cmd).await })
}

/// Awaits every task; panics if one panicked, or if they have not all
/// finished within [`PATIENCE`].
pub(crate) async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let total = tasks.len();
    let mut out = Vec::with_capacity(total);
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(done) => out.push(done.expect("enqueue task")),
            Err(_) => panic!("only {} of {total} tasks finished within {PATIENCE:?}", out.len()),
        }
    }
    out
}

/// Enqueues `cmd` and decodes a [`Whoami`]; panics on error.
pub(crate) async fn whoami_of(sup: &Supervisor, cmd: &Cmd) -> (Response, Whoami) {
    let resp = sup
        .enqueue(cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"));
    let me: Whoami = resp.data().expect("a Whoami answer");
    (resp, me)
}

/// Opens the gates named `key` on every worker.
pub(crate) async fn release(sup: &Supervisor, key: &str) {
    sup.broadcast(RELEASE, key).await.expect("broadcast release");
}

pub(crate) fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL a worker");
}

/// A process's state letter from `/proc/PID/stat`; `None` once it is gone.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: comm may hold spaces and parens; the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// A process's parent pid from `/proc/PID/stat`.
pub(crate) fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Open fds of this process, by target (`socket:[…]`, `pipe:[…]`, paths),
/// with counts; the directory handle of the listing itself is left out.
pub(crate) fn fd_targets() -> BTreeMap<String, usize> {
    let me = format!("/proc/{}/fd", std::process::id());
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(entry) = entry else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // the listing's own fd, already closed
        };
        let target = target.to_string_lossy().into_owned();
        if target != me {
            *out.entry(target).or_insert(0) += 1;
        }
    }
    out
}

/// Dead: no `/proc` entry, or a zombie / dead entry nobody reaped yet.
pub(crate) fn is_dead(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z' | 'X' | 'x'))
}

/// Every event of a supervisor from the moment of [`collect`](Events::collect).
#[derive(Clone)]
pub(crate) struct Events {
    /// Each event with the moment the collector received it.
    seen: Arc<Mutex<Vec<(std::time::Instant, Event)>>>,
    /// Set when the stream ended: the supervisor task is gone.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Events {
    /// Subscribes now (events sent before this call are not seen).
    pub(crate) fn collect(sup: &Supervisor) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut stream = sup.events();
        let sink = Arc::clone(&seen);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&closed);
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                sink.lock().unwrap().push((std::time::Instant::now(), event));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Self { seen, closed }
    }

    /// Whether the event stream has ended (the supervisor task finished).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn snapshot(&self) -> Vec<Event> {
        self.seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
    }

    /// [`snapshot`](Self::snapshot), each event with when it was received.
    pub(crate) fn timed(&self) -> Vec<(std::time::Instant, Event)> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|(_, e)| pred(e)).count()
    }

    /// Waits for the first event (seen so far or later) matching `pred`.
    pub(crate) async fn wait_for(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        eventually(what, || async {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .find(|(_, e)| pred(e))
                .map(|(_, e)| e.clone())
        })
        .await
    }

    /// No subscriber lagged: the snapshot is complete.
    pub(crate) fn assert_complete(&self) {
        assert_eq!(
            self.count(|e| matches!(e, Event::Lagged(_))),
            0,
            "the event collector lagged"
        );
    }

    /// Pids of every `WorkerSpawned` seen.
    pub(crate) fn spawned_pids(&self) -> Vec<u32> {
        self.snapshot()
            .iter()
            .filter_map(|e| match e {
                Event::WorkerSpawned { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect()
    }
}

/// Counts answers per worker.
pub(crate) fn per_worker(responses: &[Response]) -> std::collections::BTreeMap<WorkerId, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in responses {
        *counts.entry(r.worker()).or_insert(0) += 1;
    }
    counts
}

/// Options that attach `attachment` to a request.
pub(crate) fn attach(attachment: nanny::Attachment) -> nanny::EnqueueOptions {
    nanny::EnqueueOptions::new().attach(attachment)
}

/// A Unix socketpair: our end, and the other end as an attachment.
pub(crate) fn unix_attachment() -> (tokio::net::UnixStream, nanny::Attachment) {
    let (ours, theirs) = tokio::net::UnixStream::pair().expect("a socketpair");
    (ours, nanny::Attachment::unix(theirs).expect("a unix attachment"))
}

/// A pipe, both ends close-on-exec (other tests spawn workers meanwhile).
pub(crate) fn pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe");
    (std::fs::File::from(r), w)
}
