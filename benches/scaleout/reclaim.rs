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

/// Starts three hosts, kills the last one under load, measures.
pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    url: &str,
    ns: &str,
    shape: Shape,
    timers: Timers,
) -> Reclaim {
    let mut cluster = Cluster::start(url, ns, HOSTS, shape, timers);
    let (victim_name, victim) = cluster.hosts.pop().expect("three hosts");
    let killed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let answers = rt.block_on(async {
        let sup = cluster.caller().await;
        load::rate(&sup, 2_000).await; // every host reading
        let at = Arc::clone(&killed);
        let mut victim = victim;
        let killer = std::thread::spawn(move || {
            std::thread::sleep(BEFORE);
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
    assert!(
        !again.is_empty(),
        "the killed host held requests, and they were answered again"
    );
    Reclaim {
        time: again.iter().copied().max().unwrap_or_default(),
        first: again.iter().copied().min().unwrap_or_default(),
        requests: again.len(),
    }
}
