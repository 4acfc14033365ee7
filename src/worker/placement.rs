//! Where a worker runs and what `ps` calls it: the CPU set it is pinned to
//! ([`Pool::cpu_affinity`](crate::Pool::cpu_affinity)) and the process
//! titles ([`Builder::process_title`](crate::Builder::process_title)).
//!
//! A title is `argv[0]`, which the worker gets at `exec`; the supervisor's
//! own title can only be its `comm` (the 15-byte name `ps -o comm`, `top`
//! and `pgrep` show): a Rust program has no portable way to rewrite the
//! memory its `argv` lives in, which `ps -o args` reads.

use std::io;

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

/// The kernel's limit on a task's `comm`, without the NUL.
const COMM_LEN: usize = 15;

/// A worker's title: the base, then its name (`myapp api:01`).
pub(crate) fn worker_title(base: &str, name: &str) -> String {
    format!("{base} {name}")
}

/// The CPUs this process may run on (its affinity mask): the ones a worker
/// may be pinned to.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// The mask for `cpus`, built before the spawn (the child only hands it to
/// `sched_setaffinity`).
pub(crate) fn cpu_set(cpus: &[usize]) -> io::Result<CpuSet> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    Ok(set)
}

/// Names this process `base` (truncated to 15 bytes, on a character
/// boundary) where `ps -o comm` and `top` look: the main thread's `comm`.
/// Writing `/proc/self/comm` renames the thread group's leader from any of
/// its threads, where `prctl(PR_SET_NAME)` would rename only the calling
/// one (a runtime worker thread). Best effort: a failure is logged.
pub(crate) fn set_own_title(base: &str) {
    let mut end = base.len().min(COMM_LEN);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(error) = std::fs::write("/proc/self/comm", &base[..end]) {
        tracing::warn!(%error, title = base, "cannot set the supervisor's process name");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_cpus_make_a_mask_with_exactly_those() {
        let cpus = allowed_cpus().expect("sched_getaffinity of this process");
        assert!(!cpus.is_empty());
        let set = cpu_set(&cpus).unwrap();
        for cpu in 0..CpuSet::count() {
            assert_eq!(set.is_set(cpu).unwrap(), cpus.contains(&cpu), "cpu {cpu}");
        }
        assert!(cpu_set(&[CpuSet::count()]).is_err(), "past the mask's size");
    }

    #[test]
    fn a_worker_title_is_the_base_then_the_name() {
        assert_eq!(worker_title("myapp", "api:01"), "myapp api:01");
    }
}
