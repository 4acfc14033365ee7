//! The `host` mode (issue 16): one host of a multi-host test. Run as
//! `nanny-test-worker host url=… ns=… name=… [KEY=VALUE…]`, it is a real
//! supervisor whose default pool shares one request queue on Redis with
//! the other hosts' ([`nanny::RedisQueue`]), with `workers` self-forked
//! workers (the fixture in worker mode), and a caller.
//!
//! | setting         | meaning                                                     | default |
//! |-----------------|-------------------------------------------------------------|---------|
//! | `url`, `ns`     | the Redis URL and the queue's namespace                     | required |
//! | `name`          | this host's name (`RedisQueue::host`)                       | required |
//! | `workers`, `concurrency` | the pool (0 workers: a caller-only host)           | 2, 4    |
//! | `calls`, `inflight`, `base` | the caller: `calls` requests, tokens `base..base + calls`, `inflight` at a time | 0, 16, 0 |
//! | `ms`, `spread-ms` | each job sleeps `ms` plus up to `spread-ms` (`job_ms`)    | 100, 0  |
//! | `long-every`, `long-ms` | but every `long-every`-th token (`token % N == 0`) sleeps `long-ms` | none |
//! | `retries`, `deadline-ms` | each request's `retries` and overall deadline      | 3, 30000 |
//! | `heartbeat-ms`, `min-idle-ms`, `janitor-ms`, `reply-ttl-ms` | the queue's timers | the queue's |
//! | `exec-log`      | the file its workers append [`Mark`] lines to               | none    |
//!
//! Stdout, a line each: `PID <pid>` per worker, then `READY`. Commands on
//! stdin: `go` starts the caller, which prints one [`Outcome`] line per
//! request as it resolves, then a `STATS …` line and `DONE`; `stats` prints
//! a `STATS …` line (the supervisor's `QueueStats` as `key=value` words) at
//! any time. The host serves until SIGTERM (a soft kill, `handle_signals`):
//! it prints `STOPPED` once its supervisor has ended and exits 0.
//!
//! Its workers run [`Cmd::Job`](crate::cmd::Cmd::Job) with [`job`].

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use nanny_worker::{HandlerError, Request};

use crate::cmd::Cmd;
use crate::jobs::{job_answer, job_ms, unix_ms, Mark, MarkKind, Outcome};
use crate::supervise::{say, stdin_lines};

/// The worker's environment: its host's name.
const ENV_HOST: &str = "TEST_HOST";
/// The worker's environment: the exec log.
const ENV_EXEC_LOG: &str = "TEST_EXEC_LOG";

/// The worker's side of [`Cmd::Job`]: notes `EXEC`, sleeps `ms`, answers
/// [`job_answer`]; a cancelled attempt notes `CANCEL` and answers nothing.
pub(crate) async fn job(req: Request, token: u64, ms: u64) -> Result<(), HandlerError> {
    mark(MarkKind::Exec, token);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => req.respond(&job_answer(token))?,
        () = req.cancelled() => mark(MarkKind::Cancel, token),
    }
    Ok(())
}

/// Appends one [`Mark`] to the exec log (one `write` of one line, so the
/// workers of every host can share the file), if the host gave one.
fn mark(kind: MarkKind, token: u64) {
    let (Ok(host), Ok(path)) = (std::env::var(ENV_HOST), std::env::var(ENV_EXEC_LOG)) else {
        return;
    };
    let pid = nanny_worker::pid();
    let line = Mark {
        kind,
        token,
        host,
        pid,
        at_ms: unix_ms(),
    }
    .to_string()
        + "\n";
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open the exec log {path}: {e}"));
    log.write_all(line.as_bytes()).expect("write the exec log");
}

/// The `KEY=VALUE` settings of the command line.
#[derive(Debug, Clone)]
struct Settings(BTreeMap<String, String>);

impl Settings {
    fn from_args() -> Settings {
        let pairs = std::env::args().skip(2).map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => panic!("host: {a:?} is not KEY=VALUE"),
        });
        Settings(pairs.collect())
    }

    fn text(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("host: {key}= is required"))
    }

    fn opt(&self, key: &str) -> Option<u64> {
        let v = self.0.get(key)?;
        Some(v.parse().unwrap_or_else(|e| panic!("host: {key}={v:?}: {e}")))
    }

    fn num(&self, key: &str, default: u64) -> u64 {
        self.opt(key).unwrap_or(default)
    }

    fn ms(&self, key: &str) -> Option<Duration> {
        self.opt(key).map(Duration::from_millis)
    }
}

/// The host's supervisor, as its settings say.
fn builder(s: &Settings) -> nanny::Builder {
    let mut spec = nanny::WorkerSpec::current_exe()
        .expect("the current executable")
        .env(ENV_HOST, s.text("name"));
    if let Some(log) = s.0.get("exec-log") {
        spec = spec.env(ENV_EXEC_LOG, log);
    }
    let pool = nanny::Pool::default_pool(spec)
        .workers(s.num("workers", 2) as usize)
        .concurrency(s.num("concurrency", 4) as usize);
    let mut queue = nanny::RedisQueue::new(s.text("url"), s.text("ns")).host(s.text("name"));
    if let Some(every) = s.ms("heartbeat-ms") {
        queue = queue.heartbeat(every);
    }
    if let Some(after) = s.ms("min-idle-ms") {
        queue = queue.min_idle(after);
    }
    if let Some(every) = s.ms("janitor-ms") {
        queue = queue.janitor(every);
    }
    if let Some(ttl) = s.ms("reply-ttl-ms") {
        queue = queue.reply_ttl(ttl);
    }
    nanny::Supervisor::builder()
        .pool(pool)
        .queue(queue)
        .handle_signals(true)
}

/// `host KEY=VALUE…`: see the module's documentation.
pub(crate) async fn host() -> ExitCode {
    let settings = Settings::from_args();
    let supervisor = match builder(&settings).spawn() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nanny-test-worker host: supervisor failed to start: {e}");
            return nanny::exit::code(e.exit_code());
        }
    };
    if let Err(e) = supervisor.ready().await {
        eprintln!("nanny-test-worker host: supervisor failed to start: {e}");
        return nanny::exit::code(nanny::exit::UNAVAILABLE);
    }
    for h in supervisor.health().await.unwrap_or_default() {
        say(&format!("PID {}", h.pid));
    }
    say("READY");
    let mut lines = stdin_lines();
    let (mut open, mut calling) = (true, false);
    loop {
        if supervisor.is_closed() {
            say("STOPPED");
            return nanny::exit::code(nanny::exit::CLEAN);
        }
        tokio::select! {
            line = lines.recv(), if open => match line.as_deref() {
                Some("go") if !calling => {
                    calling = true;
                    tokio::spawn(call(supervisor.clone(), settings.clone()));
                }
                Some("stats") => say(&stats_line(&supervisor)),
                Some(other) => say(&format!("UNKNOWN {other}")),
                None => open = false,
            },
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// The caller: `calls` jobs, `inflight` at a time, an [`Outcome`] line
/// each as it resolves, then `STATS …` and `DONE`.
async fn call(sup: nanny::Supervisor, s: Settings) {
    let (base, calls) = (s.num("base", 0), s.num("calls", 0));
    let (ms, spread) = (s.num("ms", 100), s.num("spread-ms", 0));
    let long = s.opt("long-every").map(|every| (every, s.num("long-ms", 0)));
    let retries = s.num("retries", 3) as u32;
    let deadline = Duration::from_millis(s.num("deadline-ms", 30_000));
    let requests = (base..base + calls).map(|token| {
        let sup = sup.clone();
        async move {
            let ms = match long {
                Some((every, long_ms)) if token.is_multiple_of(every) => long_ms,
                _ => job_ms(token, ms, spread),
            };
            let cmd = Cmd::Job { token, ms };
            let options = nanny::EnqueueOptions::new().retries(retries).deadline(deadline);
            (token, sup.enqueue_with(&cmd, options).await)
        }
    });
    let mut outcomes = futures::stream::iter(requests).buffer_unordered(s.num("inflight", 16) as usize);
    while let Some((token, result)) = outcomes.next().await {
        say(&outcome(token, result).to_string());
    }
    say(&stats_line(&sup));
    say("DONE");
}

/// One request's [`Outcome`]: its answer and host, or its error.
fn outcome(token: u64, result: Result<nanny::Response, nanny::Error>) -> Outcome {
    let answered = result.and_then(|r| Ok((r.data::<u64>()?, r.host().unwrap_or("-").to_owned())));
    let result = answered.map_err(|e| format!("{e:?}").replace('\n', " "));
    Outcome { token, result }
}

/// `STATS key=value…`: the supervisor's `QueueStats` (`connected` and
/// `under_pressure` as 0 or 1).
fn stats_line(sup: &nanny::Supervisor) -> String {
    let Some(q) = sup.queue_stats() else {
        return "STATS none".to_owned();
    };
    format!(
        "STATS connected={} under_pressure={} sent={} reads={} claims={} completed={} fenced={} \
         duplicate_completions={} lost={} remote_cancels={} handed_back={} late_replies={} \
         malformed={} errors={} claim_idle_max_ms={} claim_idle_total_ms={}",
        u8::from(q.connected),
        u8::from(q.under_pressure),
        q.sent,
        q.reads,
        q.claims,
        q.completed,
        q.fenced,
        q.duplicate_completions,
        q.lost,
        q.remote_cancels,
        q.handed_back,
        q.late_replies,
        q.malformed,
        q.errors,
        q.claim_idle_max_ms,
        q.claim_idle_total_ms,
    )
}
