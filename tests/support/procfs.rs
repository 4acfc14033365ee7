//! What `/proc` says about a process: its command line, environment and
//! CPU affinity, and which children of this test process carry a marker.

use super::proc_ppid;

/// The process's command line (`/proc/PID/cmdline`), one string per
/// argument; empty once it is gone.
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    (raw.split(|&b| b == 0).filter(|a| !a.is_empty()))
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The process's `comm` (`/proc/PID/comm`), without the newline.
pub(crate) fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

/// One variable of the environment the process was exec'd with.
pub(crate) fn environ_var(pid: u32, name: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    raw.split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The CPUs each thread of the process may run on (`Cpus_allowed_list`
/// of every `/proc/PID/task/TID/status`), by thread.
pub(crate) fn thread_cpus(pid: u32) -> Vec<Vec<usize>> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|status| cpus_allowed(&status))
        .collect()
}

/// The CPUs this test process may run on.
pub(crate) fn own_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    cpus_allowed(&status).expect("a Cpus_allowed_list line")
}

/// The `Cpus_allowed_list` of a `status` file: `0-2,5` → `[0, 1, 2, 5]`.
fn cpus_allowed(status: &str) -> Option<Vec<usize>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.parse::<usize>().ok()?..=hi.parse::<usize>().ok()?);
    }
    Some(cpus)
}

/// Children of this process whose environment holds
/// `NANNY_TEST_MARKER=<marker>`.
pub(crate) fn children_marked(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_ppid(pid) == Some(me))
        .filter(|&pid| environ_var(pid, "NANNY_TEST_MARKER").as_deref() == Some(marker))
        .collect()
}
