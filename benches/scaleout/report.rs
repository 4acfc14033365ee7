//! The scale-out bench's figures and their table (Markdown, as
//! BENCHMARKS.md takes it): medians of the rounds with their min–max.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cpu::Part;
use crate::hosts::{Shape, Timers};
use crate::load::{quantile, OUTSTANDING};
use crate::reclaim::{Reclaim, HOSTS};

/// Which queue a run went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Memory,
    Redis,
}

/// One round's figures of one setup.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Commands Redis ran per request during the rate (through Redis).
    pub(crate) commands: Option<f64>,
    /// CPU time per request during the rate, by process.
    pub(crate) cpu: BTreeMap<Part, Duration>,
}

/// Everything the bench measured.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) rounds: usize,
    pub(crate) requests: usize,
    pub(crate) shape: Shape,
    pub(crate) timers: Timers,
    pub(crate) runs: BTreeMap<(usize, Kind), Vec<Run>>,
    /// Per host count, the last round's commands per request, by command.
    pub(crate) costs: BTreeMap<usize, String>,
    /// Per host count, (commands the hosts sent, commands scripts ran) per request.
    pub(crate) accounted: BTreeMap<usize, (f64, f64)>,
    pub(crate) reclaims: Vec<Reclaim>,
}

/// Prints the report on stdout.
pub(crate) fn print(r: &Report) {
    println!(
        "{} rounds; rate: {} echo requests, {OUTSTANDING} in flight; latency: one in flight; \
         each host {} worker(s) x concurrency {}",
        r.rounds, r.requests, r.shape.workers, r.shape.concurrency
    );
    println!();
    println!("| hosts | queue | req/s | p50 µs | p99 µs | Redis cmds/req (ran) | sent by hosts/req | run by scripts/req |");
    println!("|---|---|---|---|---|---|---|---|");
    for ((n, kind), runs) in &r.runs {
        let rate = spread(runs.iter().map(|x| x.rate).collect(), |v| format!("{v:.0}"));
        let p50 = spread(runs.iter().map(|x| us(x.p50)).collect(), |v| format!("{v:.0}"));
        let p99 = spread(runs.iter().map(|x| us(x.p99)).collect(), |v| format!("{v:.0}"));
        let (cmds, sent, scripts) = match kind {
            Kind::Memory => ("–".to_owned(), "–".to_owned(), "–".to_owned()),
            Kind::Redis => {
                let ran = spread(runs.iter().filter_map(|x| x.commands).collect(), |v| {
                    format!("{v:.2}")
                });
                let (s, l) = r.accounted.get(n).copied().unwrap_or_default();
                (ran, format!("{s:.2}"), format!("{l:.2}"))
            }
        };
        let queue = match kind {
            Kind::Memory => "in memory",
            Kind::Redis => "Redis",
        };
        println!("| {n} | {queue} | {rate} | {p50} | {p99} | {cmds} | {sent} | {scripts} |");
    }
    println!();
    cpu_table(r);
    println!();
    for (n, cost) in &r.costs {
        println!("{n} host(s), Redis commands per request by command (last round): {cost}");
    }
    if r.reclaims.is_empty() {
        return;
    }
    println!();
    let times: Vec<f64> = r.reclaims.iter().map(|x| ms(x.time)).collect();
    let firsts: Vec<f64> = r.reclaims.iter().map(|x| ms(x.first)).collect();
    let held: Vec<f64> = r.reclaims.iter().map(|x| x.requests as f64).collect();
    println!(
        "reclaim ({HOSTS} hosts, one SIGKILLed under load): last reclaimed answer {} ms after the kill \
         (first {} ms), {} requests answered again; bound min_idle + janitor = {} ms \
         (heartbeat {} ms)",
        spread(times, |v| format!("{v:.0}")),
        spread(firsts, |v| format!("{v:.0}")),
        spread(held, |v| format!("{v:.0}")),
        ms(r.timers.bound()),
        ms(r.timers.heartbeat),
    );
}

/// CPU µs per request during the rate, by process (medians of the rounds).
fn cpu_table(r: &Report) {
    let parts = [Part::Caller, Part::Hosts, Part::Workers, Part::Redis];
    let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
    println!("| hosts | queue | CPU µs/req: {} | total |", names.join(" | "));
    println!("|---|---|{}---|", "---|".repeat(parts.len()));
    for ((n, kind), runs) in &r.runs {
        let median = |part: Part| {
            let mut xs: Vec<f64> = runs
                .iter()
                .map(|x| us(x.cpu.get(&part).copied().unwrap_or_default()))
                .collect();
            xs.sort_by(f64::total_cmp);
            quantile(&xs, 0.5)
        };
        let cells: Vec<f64> = parts.iter().map(|&p| median(p)).collect();
        let text: Vec<String> = cells.iter().map(|c| format!("{c:.1}")).collect();
        let total: f64 = cells.iter().sum();
        println!("| {n} | {kind:?} | {} | {total:.1} |", text.join(" | "));
    }
}

/// `median (min–max)`, or just the value for one round.
fn spread(mut xs: Vec<f64>, fmt: impl Fn(f64) -> String) -> String {
    if xs.is_empty() {
        return "–".to_owned();
    }
    xs.sort_by(f64::total_cmp);
    let (lo, mid, hi) = (xs[0], quantile(&xs, 0.5), xs[xs.len() - 1]);
    if xs.len() == 1 {
        fmt(mid)
    } else {
        format!("{} ({}–{})", fmt(mid), fmt(lo), fmt(hi))
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
