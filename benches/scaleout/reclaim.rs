//! The reclaim time after a host loss: three worker hosts under the
//! bench's load ([`OUTSTANDING`](crate::load::OUTSTANDING) in flight), one
//! of them SIGKILLed (its supervisor and its workers, by pid) while it
//! holds requests. The requests it held stay pending under its consumer
//! until they have been idle for `min_idle`; a survivor's janitor then
//! claims them, and they run again as attempt 2 or later. The reclaim
//! time is from the kill to the last such answer; the configured bound
//! is `min_idle + janitor`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::hosts::{Shape, Timers};
use crate::load;
use crate::setups::Cluster;

/// Hosts of the reclaim run.
pub(crate) const HOSTS: usize = 3;
/// How long the load runs before the kill.
const BEFORE: Duration = Duration::from_millis(500);
/// How long the killer waits for the host to hold a request.
const PATIENCE: Duration = Duration::from_secs(10);

/// One reclaim run's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reclaim {
    /// Kill → the last answer of a reclaimed request.
    pub(crate) time: Duration,
    /// Kill → the first such answer.
    pub(crate) first: Duration,
    /// Requests answered again after the kill (attempt ≥ 2).
    pub(crate) requests: usize,
}

/// Waits (polling, at most [`PATIENCE`]) until the consumer of host
/// process `pid` holds a delivery of `stream`.
fn held_by(conn: &mut redis::Connection, stream: &str, pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    let mine = format!("-{pid}-");
    while Instant::now() < deadline {
        // XPENDING's summary: count, lowest id, highest id, [consumer, count]…
        let summary: (u64, redis::Value, redis::Value, Vec<(String, String)>) = redis::cmd("XPENDING")
            .arg(stream)
            .arg("workers")
            .query(conn)
            .unwrap_or((0, redis::Value::Nil, redis::Value::Nil, Vec::new()));
        if summary
            .3
            .iter()
            .any(|(consumer, n)| consumer.contains(&mine) && n != "0")
        {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("the host to kill never held a request for {PATIENCE:?}");
}

/// Starts three hosts, kills the last one under load once it holds
/// requests, measures; `None` if none of them had to be answered again
/// (it completed what it held between the look and the kill).
pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    url: &str,
    ns: &str,
    shape: Shape,
    timers: Timers,
) -> Option<Reclaim> {
    let mut cluster = Cluster::start(url, ns, HOSTS, shape, timers);
    let (victim_name, victim) = cluster.hosts.pop().expect("three hosts");
    let killed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let answers = rt.block_on(async {
        let sup = cluster.caller().await;
        load::rate(&sup, 2_000).await; // every host reading
        let at = Arc::clone(&killed);
        let mut victim = victim;
        let mut conn = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("redis");
        let (stream, pid) = (format!("{{nanny:{ns}}}:req:default"), victim.pids().0);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(BEFORE);
            held_by(&mut conn, &stream, pid.expect("a running victim"));
            let t = Instant::now();
            victim.kill();
            *at.lock().unwrap() = Some(t);
        });
        // Well past the bound: every reclaim has happened, or it is late.
        let enough = timers.bound() * 3;
        let until = || killed.lock().unwrap().is_some_and(|t| t.elapsed() > enough);
        let answers = load::answered(&sup, until).await;
        killer.join().expect("the killer thread");
        sup.soft_kill().await;
        answers
    });
    cluster.stop();
    // The instant just before the SIGKILLs.
    let killed = killed.lock().unwrap().expect("the host was killed");
    let again: Vec<Duration> = answers
        .iter()
        .filter(|a| a.at > killed && a.attempt >= 2)
        .inspect(|a| assert_ne!(a.host, victim_name, "a dead host answered"))
        .map(|a| a.at - killed)
        .collect();
    // It held one a moment before the kill, but may have completed it since.
    if again.is_empty() {
        return None;
    }
    Some(Reclaim {
        time: again.iter().copied().max().unwrap_or_default(),
        first: again.iter().copied().min().unwrap_or_default(),
        requests: again.len(),
    })
}
