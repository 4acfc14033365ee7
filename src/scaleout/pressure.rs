//! This host's memory pressure. While the memory the kernel counts as
//! available (`MemAvailable` of `/proc/meminfo`: free memory plus what it
//! can reclaim without swapping) is below the floor, the executor reads no
//! new request and claims none: other hosts take the work. What already
//! runs goes on and is renewed. The floor is
//! [`RedisQueue::min_available_memory`](super::RedisQueue::min_available_memory),
//! by default [`DEFAULT_MIN_AVAILABLE_PERCENT`](super::DEFAULT_MIN_AVAILABLE_PERCENT)
//! of the machine's memory.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one reading of `/proc/meminfo` is trusted.
const RECHECK: Duration = Duration::from_millis(200);

/// The floor and the last reading.
#[derive(Debug)]
pub(crate) struct Pressure {
    /// Below this many available bytes, the host is under pressure; 0 never.
    floor: u64,
    last: Mutex<Option<(Instant, bool)>>,
}

impl Pressure {
    /// The gate for `floor` bytes, or `percent` of the machine's memory
    /// when no floor is set (0 if `/proc/meminfo` cannot be read: then the
    /// gate never closes).
    pub(crate) fn new(floor: Option<u64>, percent: u64) -> Pressure {
        let floor = floor.unwrap_or_else(|| meminfo().map_or(0, |m| m.total / 100 * percent));
        Pressure {
            floor,
            last: Mutex::new(None),
        }
    }

    /// Whether the available memory is below the floor now (read at most
    /// every [`RECHECK`]; an unreadable `/proc/meminfo` is no pressure).
    pub(crate) fn under(&self) -> bool {
        if self.floor == 0 {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some((at, under)) if at.elapsed() < RECHECK => under,
            _ => {
                let under = meminfo().is_some_and(|m| m.available < self.floor);
                *last = Some((Instant::now(), under));
                under
            }
        }
    }
}

/// `MemTotal` and `MemAvailable`, in bytes.
#[derive(Debug, Clone, Copy)]
struct MemInfo {
    total: u64,
    available: u64,
}

fn meminfo() -> Option<MemInfo> {
    parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse(text: &str) -> Option<MemInfo> {
    let kib = |key: &str| {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let n: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(n * 1024)
    };
    Some(MemInfo {
        total: kib("MemTotal:")?,
        available: kib("MemAvailable:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = parse("MemTotal:       24683848 kB\nMemFree:        1 kB\nMemAvailable:   23937000 kB\n")
            .expect("parses");
        assert_eq!((m.total, m.available), (24_683_848 * 1024, 23_937_000 * 1024));
        assert!(parse("MemTotal: 5 kB\n").is_none(), "no MemAvailable: no reading");
        assert!(meminfo().is_some(), "this machine's /proc/meminfo");
    }

    #[test]
    fn the_gate_closes_below_the_floor_only() {
        assert!(
            Pressure::new(Some(u64::MAX), 5).under(),
            "no machine has that much available"
        );
        assert!(!Pressure::new(Some(1), 5).under());
        assert!(!Pressure::new(Some(0), 5).under(), "0: never");
        let default = Pressure::new(None, 5);
        assert!(default.floor > 0 && default.floor < u64::MAX);
    }
}
