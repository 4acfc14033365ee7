//! Where the CPU goes during a rate: the user + system time of each
//! process taking part (`/proc/<pid>/stat`, in clock ticks), before and
//! after, summed by [`Part`] and given per request.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::unistd::{sysconf, SysconfVar};

/// What a process is in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Part {
    /// This process: the caller (and, in memory, the supervisor).
    Caller,
    /// The worker hosts' supervisors.
    Hosts,
    /// Every worker process.
    Workers,
    /// `redis-server`.
    Redis,
}

impl Part {
    /// The column's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Caller => "caller",
            Part::Hosts => "host sups",
            Part::Workers => "workers",
            Part::Redis => "redis",
        }
    }
}

/// The processes of one setup, with their CPU time at the start.
#[derive(Debug)]
pub(crate) struct Sample {
    pids: Vec<(Part, u32)>,
    start: Vec<u64>,
}

impl Sample {
    /// Reads the CPU time of `pids` now.
    pub(crate) fn start(mut pids: Vec<(Part, u32)>) -> Sample {
        pids.push((Part::Caller, std::process::id()));
        let start = pids.iter().map(|&(_, p)| ticks(p)).collect();
        Sample { pids, start }
    }

    /// CPU time since the start per request, by part.
    pub(crate) fn per_request(&self, requests: usize) -> BTreeMap<Part, Duration> {
        let tick = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
        let mut by = BTreeMap::new();
        for (&(part, pid), &t0) in self.pids.iter().zip(&self.start) {
            let secs = ticks(pid).saturating_sub(t0) as f64 / tick;
            *by.entry(part).or_insert(Duration::ZERO) += Duration::from_secs_f64(secs / requests as f64);
        }
        by
    }
}

/// utime + stime of `pid` in clock ticks (0 once it is gone).
fn ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // After the command's `)`: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}
