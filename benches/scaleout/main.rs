//! Several hosts through one Redis (issue 16) beside the in-memory queue,
//! in the same run.
//!
//! ```text
//! cargo bench --bench scaleout                 # 3 rounds, 30 000 requests a rate
//! cargo bench --bench scaleout -- 5 50000      # ROUNDS REQUESTS
//! cargo bench --bench scaleout -- 1 200000 3   # ROUNDS REQUESTS HOSTS: one host count, for a profile
//! ```
//!
//! The bench starts its own `redis-server` on a Unix socket in a temporary
//! folder (the scale-out tests' harness, `tests/scaleout/redis_server.rs`,
//! no persistence), then, round after round, for N = 1, 2 and 3 hosts:
//!
//! * **in memory**: one supervisor in this process with a local pool of
//!   N × [`SHAPE`] workers of the `nanny-test-worker` fixture;
//! * **through Redis**: N worker hosts, each a `nanny-test-worker host …
//!   calls=0` process (a real supervisor with a `RedisQueue` and
//!   [`SHAPE`] workers of the same fixture), and this process as a
//!   caller-only host (a supervisor whose pool has 0 workers), on a fresh
//!   namespace.
//!
//! Each measures, after a warm-up of [`WARM_UP`] requests: the rate with
//! 256 requests in flight (`REQUESTS` tiny echo requests: `Cmd::Echo("x")`,
//! every answer checked), then p50 and p99 with one in flight
//! ([`SEQUENTIAL`] requests). Through Redis, `INFO commandstats` before and
//! after the rate gives the commands Redis ran per request (those a Lua
//! script runs included). The two setups alternate within a round; the
//! table gives the median of the rounds and their range.
//!
//! Then, per N, one untimed load of [`ACCOUNTED`] requests under
//! `redis-cli monitor` splits those commands into what the hosts sent
//! (requests on a socket: pipelined ones share a round trip) and what the
//! scripts ran; and [`ROUNDS`] reclaim runs ([`reclaim`]): three hosts
//! under load, one SIGKILLed, the time until its requests are answered by
//! the others, against the configured `min_idle + janitor` ([`TIMERS`]).
//!
//! Everything runs on this one machine: Redis, the hosts, their workers
//! and the caller share its cores.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::runtime::Runtime;

#[path = "../../tests/support/cmd.rs"]
mod cmd;
#[path = "../../tests/support/mail.rs"]
mod mail;
#[path = "../../tests/scaleout/redis_server.rs"]
mod redis_server;

mod commands;
mod cpu;
mod hosts;
mod load;
mod reclaim;
mod report;
mod setups;

use commands::{Monitor, Tally};
use cpu::{Part, Sample};
use hosts::{Shape, Timers};
use redis_server::RedisServer;
use report::{Kind, Run};
use setups::Cluster;

/// Rounds by default.
const ROUNDS: usize = 3;
/// Requests of one rate by default.
const REQUESTS: usize = 30_000;
/// Requests before any measure.
const WARM_UP: usize = 2_000;
/// Requests of the latency, one at a time.
const SEQUENTIAL: usize = 2_000;
/// Requests of the monitored load.
const ACCOUNTED: usize = 5_000;
/// Each host: one worker process serving up to 256 requests at a time.
const SHAPE: Shape = Shape {
    workers: 1,
    concurrency: 256,
};
/// The queue's timers on every host: a reclaim bound of 1.25 s.
const TIMERS: Timers = Timers {
    heartbeat: Duration::from_millis(250),
    min_idle: Duration::from_millis(1000),
    janitor: Duration::from_millis(250),
};
/// The host counts.
const HOSTS: [usize; 3] = [1, 2, 3];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().map_or(ROUNDS, |a| a.parse().expect("ROUNDS"));
    let requests: usize = args.next().map_or(REQUESTS, |a| a.parse().expect("REQUESTS"));
    // For a profile: one host count only, and neither the monitored load
    // nor the reclaim runs.
    let only: Option<usize> = args.next().map(|a| a.parse().expect("HOSTS"));
    let counts: Vec<usize> = HOSTS
        .into_iter()
        .filter(|&n| only.is_none_or(|o| o == n))
        .collect();
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs: BTreeMap<(usize, Kind), Vec<Run>> = BTreeMap::new();
    let mut costs = BTreeMap::new();
    for round in 0..rounds {
        for &n in &counts {
            let memory = in_memory(&rt, n, requests);
            eprintln!("round {round}, {n} host(s): memory {memory:?}");
            runs.entry((n, Kind::Memory)).or_default().push(memory);
            let (redis, cost) = through_redis(&rt, &server, &format!("r{round}n{n}"), n, requests);
            eprintln!("round {round}, {n} host(s): redis {redis:?}");
            runs.entry((n, Kind::Redis)).or_default().push(redis);
            costs.insert(n, cost);
        }
    }
    let accounted: BTreeMap<usize, (f64, f64)> = match only {
        Some(_) => BTreeMap::new(),
        None => HOSTS.iter().map(|&n| (n, account(&rt, &server, n))).collect(),
    };
    let reclaims: Vec<_> = (0..rounds)
        .filter(|_| only.is_none())
        .map(|round| {
            // A kill that lands when the host holds nothing measures nothing: again.
            (0..3)
                .find_map(|t| reclaim::run(&rt, &server.url(), &format!("k{round}t{t}"), SHAPE, TIMERS))
                .expect("a host killed while it held requests, in three tries")
        })
        .collect();
    report::print(&report::Report {
        rounds,
        requests,
        shape: SHAPE,
        timers: TIMERS,
        runs,
        costs,
        accounted,
        reclaims,
    });
}

/// One round of the in-memory baseline for `n` hosts.
fn in_memory(rt: &Runtime, n: usize, requests: usize) -> Run {
    rt.block_on(async {
        let sup = setups::memory(n, SHAPE).await;
        load::rate(&sup, WARM_UP).await;
        let cpu = Sample::start(setups::workers(&sup).await);
        let rate = load::rate(&sup, requests).await;
        let cpu = cpu.per_request(requests);
        let (p50, p99) = load::latency(&sup, SEQUENTIAL).await;
        sup.soft_kill().await;
        Run {
            rate,
            p50,
            p99,
            commands: None,
            cpu,
        }
    })
}

/// One round through Redis with `n` worker hosts on namespace `ns`; also
/// what the rate cost Redis, per command.
fn through_redis(rt: &Runtime, server: &RedisServer, ns: &str, n: usize, requests: usize) -> (Run, String) {
    let cluster = Cluster::start(&server.url(), ns, n, SHAPE, TIMERS);
    let mut conn = server.connection();
    let (run, cost) = rt.block_on(async {
        let sup = cluster.caller().await;
        load::rate(&sup, WARM_UP).await;
        let mut parts = cluster.parts();
        parts.push((Part::Redis, server.pid()));
        let cpu = Sample::start(parts);
        let before = Tally::now(&mut conn);
        let rate = load::rate(&sup, requests).await;
        let ran = Tally::now(&mut conn).since(&before);
        let cpu = cpu.per_request(requests);
        let (p50, p99) = load::latency(&sup, SEQUENTIAL).await;
        sup.soft_kill().await;
        let run = Run {
            rate,
            p50,
            p99,
            commands: Some(ran.total() as f64 / requests as f64),
            cpu,
        };
        (run, ran.per_request(requests))
    });
    cluster.stop();
    (run, cost)
}

/// The monitored load with `n` hosts: (commands the hosts sent, commands
/// the scripts ran), per request.
fn account(rt: &Runtime, server: &RedisServer, n: usize) -> (f64, f64) {
    let cluster = Cluster::start(&server.url(), &format!("m{n}"), n, SHAPE, TIMERS);
    let (clients, scripts) = rt.block_on(async {
        let sup = cluster.caller().await;
        load::rate(&sup, WARM_UP).await;
        let monitor = Monitor::start(server.socket());
        load::rate(&sup, ACCOUNTED).await;
        let counted = monitor.stop();
        sup.soft_kill().await;
        counted
    });
    cluster.stop();
    let per = |c: u64| c as f64 / ACCOUNTED as f64;
    (per(clients), per(scripts))
}
