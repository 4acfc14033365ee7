//! What every system reports: one JSON line per (system, workload), and
//! the process measurements behind the CPU and memory rows.

use std::time::Duration;

/// Prints the results of one system in one round.
#[derive(Debug)]
pub struct Report {
    round: u32,
    system: String,
}

impl Report {
    /// Results of `system` in round `round`.
    pub fn new(round: u32, system: impl Into<String>) -> Self {
        Self {
            round,
            system: system.into(),
        }
    }

    /// One result line: `{"round":1,"system":"raw","workload":"rtt_p50","value":20.7,"unit":"us"}`.
    pub fn emit(&self, workload: &str, value: f64, unit: &str) {
        println!(
            r#"{{"round":{},"system":"{}","workload":"{}","value":{:.4},"unit":"{}"}}"#,
            self.round, self.system, workload, value, unit
        );
    }

    /// The p50 and p99 of `each` (sorted here), in microseconds.
    pub fn latencies(&self, each: &mut [Duration]) {
        each.sort_unstable();
        let at = |q: f64| each[((each.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
        self.emit("rtt_p50", at(0.50), "us");
        self.emit("rtt_p99", at(0.99), "us");
    }

    /// The peak RSS of this (the dispatching) process, from `VmHWM`.
    pub fn peak_rss(&self) {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        self.emit("rss", kib / 1024.0, "MiB");
    }
}

/// User + system CPU seconds used so far by this process (all its
/// threads), and by `pids` together (0 for one that is gone).
pub fn cpu_split(pids: &[u32]) -> (f64, f64) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let one = |path: String| -> f64 {
        let Ok(stat) = std::fs::read_to_string(path) else {
            return 0.0;
        };
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (field(14) + field(15)) / ticks
    };
    (
        one("/proc/self/stat".into()),
        pids.iter().map(|p| one(format!("/proc/{p}/stat"))).sum::<f64>(),
    )
}

/// The outcome of a steady burst: answers per worker and the time taken
/// from the first request to the last answer.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Answers counted per worker, in the system's own worker order.
    pub per_worker: Vec<u64>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Burst {
    /// All answers.
    pub fn total(&self) -> u64 {
        self.per_worker.iter().sum()
    }

    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64()
    }

    /// The busiest worker's share of the answers, in percent.
    pub fn busiest_share(&self) -> f64 {
        let max = self.per_worker.iter().copied().max().unwrap_or(0);
        100.0 * max as f64 / self.total().max(1) as f64
    }
}

/// The median of `v` (sorted here).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}
