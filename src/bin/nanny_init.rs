//! `nanny-init`: pid 1 of the PID namespace of one worker and its
//! descendants.
//!
//! nanny's supervisor thread enters a new namespace, starts this program
//! (pid 1 there), then the worker (pid 2), and goes back to its own (see
//! `src/worker/spawn/namespace.rs`). Both are the supervisor's children;
//! the pids nanny reports are the host's. When pid 1 of a namespace exits,
//! the kernel SIGKILLs every process left in it. So:
//!
//! * the supervisor is SIGKILLed: this process has `PR_SET_PDEATHSIG =
//!   SIGKILL` (set before its `exec`), dies, and the whole tree goes with
//!   it, the worker included;
//! * the worker exits (any way): the supervisor sends this process
//!   SIGTERM, which it forwards to every process left in the namespace,
//!   however they left the worker's process group (`setsid`, double
//!   forks); it exits once none is left alive, and the supervisor SIGKILLs
//!   it after the pool's `force_stop_delay` if one lingers;
//! * every orphan in the namespace is re-parented here, and reaped: none
//!   reaches the host's init (which may be nanny itself, in a container).
//!
//! It takes its own session, so the signals nanny sends the worker's
//! process group are the worker's alone, and `PR_SET_PDEATHSIG` first thing
//! (nanny spawns it with `posix_spawn`, which cannot); it needs no argument
//! but the supervisor's pid: a parent that is not the supervisor (it died
//! before `PR_SET_PDEATHSIG`) makes it exit at once. While ending,
//! "none left alive" is read from the host's `/proc` every 10 ms (the
//! processes whose `ns/pid` is this one's, zombies aside: a zombie whose
//! parent is alive still takes a signal, so `kill(-1, 0)` cannot tell).
//!
//! `nanny-init --probe` answers whether this process may create PID
//! namespaces (exit 0), or why not (exit 1, the reason on stderr); nanny
//! runs it once at start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--probe" => probe(),
        [parent] => match parent.parse::<i32>() {
            Ok(parent) => keep(Pid::from_raw(parent)),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: nanny-init SUPERVISOR_PID | nanny-init --probe (started by nanny, not by hand)");
    ExitCode::from(2)
}

/// Makes a PID namespace and a first process in it, as a worker's fork
/// will.
fn probe() -> ExitCode {
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("unshare(CLONE_NEWPID): {}", e.desc());
        return ExitCode::FAILURE;
    }
    #[allow(unsafe_code)]
    // SAFETY: this process has one thread; the child only exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => std::process::exit(i32::from(getpid() != Pid::from_raw(1))),
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => ExitCode::SUCCESS,
            other => {
                eprintln!("the first process of a new PID namespace: {other:?}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("fork into a new PID namespace: {}", e.desc());
            ExitCode::FAILURE
        }
    }
}

/// Pid 1 of a worker's namespace: reaps until SIGTERM, then ends the
/// namespace.
fn keep(supervisor: Pid) -> ExitCode {
    if getpid() != Pid::from_raw(1) {
        eprintln!("nanny-init: not pid 1 of a PID namespace");
        return ExitCode::from(2);
    }
    // Dies with the supervisor; the parent check below catches a
    // supervisor that died before this.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return ExitCode::FAILURE;
    }
    let _ = nix::unistd::setsid();
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGCHLD);
    // Blocked, they queue for `wait` (and a namespace's pid 1 receives
    // from outside only what it handles or blocks).
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).is_err() {
        return ExitCode::FAILURE;
    }
    // After the mask: a SIGTERM sent from here on is kept, not lost.
    if parent_of_self() != Some(supervisor) {
        return ExitCode::SUCCESS;
    }
    loop {
        reap();
        match signals.wait() {
            Ok(Signal::SIGTERM) => break,
            Ok(_) => {}
            Err(_) => return ExitCode::FAILURE,
        }
    }
    // Every process of the namespace but this one; none at all (not even
    // a zombie) is the common end, at once.
    if kill(Pid::from_raw(-1), Signal::SIGTERM) == Err(nix::errno::Errno::ESRCH) {
        return ExitCode::SUCCESS;
    }
    let Some(me) = Namespace::of_self() else {
        return ExitCode::FAILURE;
    };
    loop {
        reap();
        if !me.has_living_members() {
            return ExitCode::SUCCESS;
        }
        wait_for_child(Duration::from_millis(10));
    }
}

/// This process's PID namespace, as the host's `/proc` names it.
struct Namespace {
    /// Our own pid there.
    host_pid: std::ffi::OsString,
    /// The `ns/pid` link's target, `pid:[inode]`.
    id: PathBuf,
}

impl Namespace {
    fn of_self() -> Option<Self> {
        Some(Self {
            host_pid: std::fs::read_link("/proc/self").ok()?.into_os_string(),
            id: std::fs::read_link("/proc/self/ns/pid").ok()?,
        })
    }

    /// Whether a process of the namespace other than this one is alive
    /// (not a zombie).
    fn has_living_members(&self) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return false;
        };
        dir.flatten()
            .map(|e| e.file_name())
            .filter(|pid| *pid != self.host_pid && pid.to_str().is_some_and(|p| p.parse::<u32>().is_ok()))
            .filter(|pid| {
                let base = PathBuf::from("/proc").join(pid);
                std::fs::read_link(base.join("ns/pid")).is_ok_and(|ns| ns == self.id)
            })
            .any(|pid| !matches!(state(&pid), Some('Z' | 'X') | None))
    }
}

/// A process's state letter from the host's `/proc`.
fn state(pid: &std::ffi::OsStr) -> Option<char> {
    stat_fields(&PathBuf::from("/proc").join(pid).join("stat"))?
        .next()?
        .chars()
        .next()
}

/// The fields of a `/proc/PID/stat` file after `pid (comm)`, from `state`
/// on (comm may hold spaces and parentheses: the split is at the last `)`).
fn stat_fields(path: &std::path::Path) -> Option<std::vec::IntoIter<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(
        rest.split_ascii_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

/// Sleeps until a child exits (SIGCHLD, taken) or `timeout` passes.
fn wait_for_child(timeout: Duration) {
    let spec = nix::libc::timespec {
        tv_sec: timeout.as_secs() as nix::libc::time_t,
        tv_nsec: timeout.subsec_nanos() as nix::libc::c_long,
    };
    let mut only_chld = SigSet::empty();
    only_chld.add(Signal::SIGCHLD);
    #[allow(unsafe_code)]
    // SAFETY: both pointers are to live locals; a null info is allowed.
    unsafe {
        nix::libc::sigtimedwait(only_chld.as_ref(), std::ptr::null_mut(), &spec);
    }
}

/// Reaps every child that has exited.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// This process's parent in the host's namespace (`getppid` says 0 here:
/// the parent is outside the namespace), from the host's `/proc`.
fn parent_of_self() -> Option<Pid> {
    let ppid = stat_fields(std::path::Path::new("/proc/self/stat"))?
        .nth(1)?
        .parse()
        .ok()?;
    Some(Pid::from_raw(ppid))
}
