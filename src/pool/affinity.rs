//! CPU affinity of a pool's workers (clustr-node's `cpu`, which runs
//! `taskset`): [`Pool::cpu_affinity`] pins every worker to one set,
//! [`Pool::cpu_per_worker`] gives each worker a CPU of its own.
//!
//! The set is applied in the child between its clone and its exec
//! (`sched_setaffinity(2)`), so the program never runs a single
//! instruction elsewhere, and every thread and process it starts inherits
//! it. A replacement runs where its predecessor did: the CPU follows the
//! worker's slot, not its process.

use super::Pool;

/// Which CPUs a pool's workers may run on (validated at start: see
/// [`ConfigError::CpuAffinity`](crate::ConfigError::CpuAffinity)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cpus {
    /// [`Pool::cpu_affinity`]: every worker on this set (sorted, no duplicates).
    pub(crate) shared: Option<Vec<usize>>,
    /// [`Pool::cpu_per_worker`]: the worker of slot `n` (its name's number,
    /// from 1) on `per_worker[(n - 1) % len]`, in the order given.
    pub(crate) per_worker: Option<Vec<usize>>,
}

impl Cpus {
    /// Whether any affinity is configured.
    pub(crate) fn is_set(&self) -> bool {
        self.shared.is_some() || self.per_worker.is_some()
    }

    /// Every CPU named, in either form.
    pub(crate) fn all(&self) -> impl Iterator<Item = usize> + '_ {
        (self.shared.iter().chain(&self.per_worker)).flatten().copied()
    }

    /// The CPUs of the worker in slot `number` (from 1); `None`: wherever
    /// the supervisor itself may run.
    pub(crate) fn for_slot(&self, number: u32) -> Option<Vec<usize>> {
        if let Some(set) = &self.shared {
            return Some(set.clone());
        }
        let cpus = self.per_worker.as_ref().filter(|c| !c.is_empty())?;
        let at = (number.saturating_sub(1) as usize) % cpus.len();
        Some(vec![cpus[at]])
    }

    /// Whether a worker's spawn may pin its new workers to `wanted`: each
    /// CPU must be in the pool's own set (either form) if it has one, else
    /// among the CPUs the supervisor may run on. The error says why not.
    pub(crate) fn admits(&self, wanted: &[usize]) -> Result<(), String> {
        if wanted.is_empty() {
            return Err("an empty CPU set".to_owned());
        }
        let (allowed, whose) = if self.is_set() {
            (self.all().collect(), "its cpu_affinity / cpu_per_worker set")
        } else {
            let own = crate::worker::placement::allowed_cpus()
                .map_err(|e| format!("cannot read the supervisor's CPUs: {e}"))?;
            (own, "the CPUs the supervisor may run on")
        };
        match wanted.iter().find(|cpu| !allowed.contains(cpu)) {
            Some(cpu) => Err(format!("CPU {cpu} is not in {whose} {allowed:?}")),
            None => Ok(()),
        }
    }
}

impl Pool {
    /// Pins every worker of the pool to these CPUs (default: none, the
    /// workers run wherever the supervisor may). CPUs are numbered from 0,
    /// as in `taskset -c` and `/proc/cpuinfo`; each must be one the
    /// supervisor itself may run on, or the start fails with
    /// [`ConfigError::CpuAffinity`](crate::ConfigError::CpuAffinity).
    ///
    /// ```
    /// # use nanny::{Pool, WorkerSpec};
    /// // Two cores for the web workers, the others for the rest of the host.
    /// let web = Pool::new("web", WorkerSpec::new("./web")).workers(4).cpu_affinity([0, 1]);
    /// ```
    ///
    /// Applied in the child before `exec`, so it holds from the program's
    /// first instruction and for every thread and child it starts. Shown
    /// per slot in [`WorkerSlot::cpus`](crate::WorkerSlot::cpus).
    /// Exclusive with [`cpu_per_worker`](Self::cpu_per_worker).
    pub fn cpu_affinity(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut set: Vec<usize> = cpus.into_iter().collect();
        set.sort_unstable();
        set.dedup();
        self.cpus.shared = Some(set);
        self
    }

    /// One CPU per worker (clustr-node's `cpu: 0`, `cpu: 1`, …): the worker
    /// named `pool:01` runs on `cpus[0]`, `pool:02` on `cpus[1]`, and so on,
    /// wrapping around when there are more workers than CPUs. A replacement
    /// keeps its slot's CPU; a worker added by a resize takes its slot
    /// number's. The checks are those of [`cpu_affinity`](Self::cpu_affinity),
    /// which it excludes.
    ///
    /// ```
    /// # use nanny::{Pool, WorkerSpec};
    /// // One core each, as clustr-node's examples do.
    /// let cache = Pool::new("cache", WorkerSpec::new("./cache")).workers(2).cpu_per_worker([2, 3]);
    /// ```
    pub fn cpu_per_worker(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpus.per_worker = Some(cpus.into_iter().collect());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_set_is_sorted_and_the_same_for_every_slot() {
        let pool = Pool::new("p", crate::WorkerSpec::new("x")).cpu_affinity([3, 1, 3]);
        assert_eq!(pool.cpus.for_slot(1), Some(vec![1, 3]));
        assert_eq!(pool.cpus.for_slot(7), Some(vec![1, 3]));
    }

    #[test]
    fn per_worker_cpus_follow_slot_numbers_and_wrap() {
        let pool = Pool::new("p", crate::WorkerSpec::new("x")).cpu_per_worker([2, 0]);
        let got: Vec<_> = (1..=3).map(|n| pool.cpus.for_slot(n)).collect();
        assert_eq!(got, [Some(vec![2]), Some(vec![0]), Some(vec![2])]);
        assert_eq!(Cpus::default().for_slot(1), None);
    }

    #[test]
    fn a_spawn_may_ask_only_for_cpus_of_the_pool_s_set_or_the_supervisor_s() {
        let pool = Pool::new("p", crate::WorkerSpec::new("x")).cpu_affinity([0, 2]);
        assert_eq!(pool.cpus.admits(&[2]), Ok(()));
        assert!(pool.cpus.admits(&[1]).unwrap_err().contains("CPU 1 is not in"));
        assert!(pool.cpus.admits(&[]).is_err(), "an empty set");
        let each = Pool::new("p", crate::WorkerSpec::new("x")).cpu_per_worker([3]);
        assert_eq!(each.cpus.admits(&[3]), Ok(()));
        assert!(each.cpus.admits(&[0]).is_err());
        let own = crate::worker::placement::allowed_cpus().unwrap();
        assert_eq!(Cpus::default().admits(&own), Ok(()));
        let past = own.iter().max().unwrap() + 1;
        assert!(Cpus::default().admits(&[past]).is_err());
    }
}
