//! The `supervise` mode: run by hand, the fixture is a supervisor of
//! self-forked workers, driven by commands on stdin or by signals.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::cmd::Cmd;

/// `supervise N [signals] [KEY=VALUE…]`: a supervisor of N self-forked workers.
///
/// Prints `PID <pid>` per worker, then `READY`. Without `signals` it then
/// reads commands on stdin (see [`command`]) until its end, and waits to
/// be killed. With `signals` it takes SIGTERM/SIGINT (`handle_signals`,
/// and no forced stop, so only a hard kill ends a worker that ignores the
/// soft kill): it prints `DRAINING` once a soft kill has begun and
/// `STOPPED` once the supervisor has ended, then exits with the code of
/// `nanny::exit` (0 after a graceful stop, 128 + N after a hard kill by a
/// second signal N); after a reload (SIGHUP) it prints `RELOADED` and the
/// workers' pids. A supervisor that cannot start exits with its
/// `StartError::exit_code` (78 for a bad configuration, e.g. `supervise 0`)
/// or, if `ready()` fails, `nanny::exit::UNAVAILABLE`.
///
/// Settings: `pulse-ms=`, `unhealthy-ms=` (`unhealthy_timeout`),
/// `max-restarts=`, `title=` (`process_title`). Whatever the mode, it prints `STALLED <worker>` for
/// every worker the supervisor stops as stalled.
pub(crate) async fn supervise() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let n: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(2);
    let signals = args.iter().any(|a| a == "signals");
    let setting = |key: &str| -> Option<u64> {
        args.iter().find_map(|a| {
            let v = a.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.parse().unwrap_or_else(|e| panic!("{a:?}: {e}")))
        })
    };
    let spec = nanny::WorkerSpec::current_exe().expect("the current executable");
    let mut builder = nanny::Supervisor::builder().pool(nanny::Pool::default_pool(spec).workers(n));
    if signals {
        builder = builder.handle_signals(true).force_stop_delay(None);
    }
    if let Some(ms) = setting("pulse-ms") {
        builder = builder.pulse(Duration::from_millis(ms));
    }
    if let Some(ms) = setting("unhealthy-ms") {
        builder = builder.unhealthy_timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(n) = setting("max-restarts") {
        builder = builder.max_restarts(n as u32);
    }
    if let Some(title) = args.iter().find_map(|a| a.strip_prefix("title=")) {
        builder = builder.process_title(title);
    }
    let supervisor = match builder.spawn() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nanny-test-worker: supervisor failed to start: {e}");
            return nanny::exit::code(e.exit_code());
        }
    };
    let stalled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut events = supervisor.events();
    let count = Arc::clone(&stalled);
    let sup = supervisor.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                nanny::Event::WorkerStopping {
                    worker,
                    reason: nanny::events::StopReason::Stalled,
                } => {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    say(&format!("STALLED {worker}"));
                }
                nanny::Event::ClusterReloaded => {
                    let pids: Vec<String> = (sup.health().await.unwrap_or_default().iter())
                        .map(|h| h.pid.to_string())
                        .collect();
                    say(&format!("RELOADED {}", pids.join(" ")));
                }
                _ => {}
            }
        }
    });
    if let Err(e) = supervisor.ready().await {
        eprintln!("nanny-test-worker: supervisor failed to start: {e}");
        return nanny::exit::code(nanny::exit::UNAVAILABLE);
    }
    let health = supervisor.health().await.expect("health of a running supervisor");
    for h in &health {
        say(&format!("PID {}", h.pid));
    }
    say("READY");
    if !signals {
        let mut lines = stdin_lines();
        while let Some(line) = lines.recv().await {
            command(&supervisor, &stalled, &line).await;
        }
        futures::future::pending::<()>().await;
    }
    let mut draining = false;
    loop {
        if supervisor.is_closed() {
            say("STOPPED");
            let stop = supervisor.stop_signal();
            return nanny::exit::code(stop.map_or(nanny::exit::CLEAN, |s| s.exit_code()));
        }
        if !draining {
            // A running supervisor answers UnknownPool, a stopping one ShuttingDown.
            let probe = supervisor
                .enqueue_with(&(), nanny::EnqueueOptions::new().pool("no-such-pool"))
                .await;
            if matches!(probe, Err(nanny::Error::ShuttingDown)) {
                say("DRAINING");
                draining = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One command of the `supervise` mode, read on stdin:
///
/// | command                  | does, and prints                                                  |
/// |--------------------------|-------------------------------------------------------------------|
/// | `sleep N MS TIMEOUT_MS`  | N requests of `Cmd::Sleep(MS)`, each with that timeout and no retry; `SENT` once the workers' heartbeats count them all, `SLEPT ok=… timeout=… other=…` once all resolved |
/// | `whoami N`               | N `Cmd::Whoami` requests at once; `WHOAMI ok=… err=…`             |
/// | `counts`                 | `COUNTS stalled=… restarts=… failed=… ready=… running=…`: workers stopped as stalled, restarts, failed pools, ready workers, live workers |
async fn command(sup: &nanny::Supervisor, stalled: &std::sync::atomic::AtomicUsize, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(1) };
    match words.first().copied() {
        Some("sleep") => {
            let (n, ms, timeout) = (num(1) as usize, num(2), num(3));
            let options = || {
                nanny::EnqueueOptions::new()
                    .timeout(Some(Duration::from_millis(timeout)))
                    .retries(0)
            };
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let sup = sup.clone();
                    let opts = options();
                    tokio::spawn(async move { sup.enqueue_with(&Cmd::Sleep(ms), opts).await })
                })
                .collect();
            // In flight for the workers themselves: their heartbeats count them.
            let seen = || async {
                let h = sup.health().await.unwrap_or_default();
                h.iter()
                    .filter_map(|w| w.heartbeat.as_ref())
                    .map(|hb| hb.in_flight as usize)
                    .sum::<usize>()
            };
            while seen().await < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            say("SENT");
            tokio::spawn(async move {
                let (mut ok, mut timeouts, mut other) = (0, 0, 0);
                for t in tasks {
                    match t.await.expect("an enqueue task") {
                        Ok(_) => ok += 1,
                        Err(nanny::Error::Timeout { .. }) => timeouts += 1,
                        Err(_) => other += 1,
                    }
                }
                say(&format!("SLEPT ok={ok} timeout={timeouts} other={other}"));
            });
        }
        Some("whoami") => {
            let results = futures::future::join_all((0..num(1)).map(|_| sup.enqueue(&Cmd::Whoami))).await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            say(&format!("WHOAMI ok={ok} err={}", results.len() - ok));
        }
        Some("counts") => {
            let restarts = sup.stats().await.map_or(0, |s| s.restarts);
            let info = sup.inspect().await.expect("inspect a running supervisor");
            let failed = info.pools.iter().filter(|p| p.failed).count();
            let ready = sup.health().await.map_or(0, |h| {
                h.iter().filter(|w| w.state == nanny::WorkerState::Ready).count()
            });
            say(&format!(
                "COUNTS stalled={} restarts={restarts} failed={failed} ready={ready} running={}",
                stalled.load(std::sync::atomic::Ordering::SeqCst),
                info.count_running_workers(),
            ));
        }
        _ => say(&format!("UNKNOWN {line}")),
    }
}

/// The lines of stdin, read on a thread of its own (tokio's stdin is not
/// in this build); the channel closes at its end.
pub(crate) fn stdin_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// One line on stdout, flushed.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}
