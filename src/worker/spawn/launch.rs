//! Starting a child process without copying the supervisor's page tables:
//! `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, the way `posix_spawn`
//! starts one, with nanny's own steps between the clone and the `execve`.
//!
//! # Why not `fork`
//!
//! `std::process::Command` forks as soon as it has a `pre_exec` closure,
//! and a worker needs one (its process group, its death signal, its CPU
//! set, its credentials, its descriptors). A fork copies the parent's page
//! tables and marks every private page copy-on-write, so the cost grows
//! with the supervisor's memory: on the 2-vCPU VM of BENCHMARKS.md, from a
//! parent with 30 MiB resident, `spawn` took 1.03 ms with a fork against
//! 0.11 ms without, and the parent then paid a write fault on each page it
//! touched again (5 ms for all 30 MiB). A supervisor embedded in a large
//! application would stall it on every restart. Here the child borrows the
//! parent's memory until it `exec`s: nothing is copied.
//!
//! # What the child may do
//!
//! Until `execve` the child runs on a stack of its own
//! ([`Stack`], mapped here, with a guard page) inside the parent's memory,
//! while the calling thread waits (`CLONE_VFORK`) and the parent's other
//! threads go on. So the body ([`launch`]'s argument) makes system calls
//! only, on values built before the clone: no allocation, no lock, no
//! glibc wrapper that acts on the whole process (`setuid` and its kin
//! signal every thread of the parent in glibc; the credentials use raw
//! system calls for that reason, see `pool::credentials`).
//!
//! Signals: the calling thread blocks every signal around the clone, so no
//! handler of the parent can run in the child on the shared memory; the
//! child first resets every caught signal (and `SIGPIPE`, as std does) to
//! its default disposition, with its own copy of the handler table (no
//! `CLONE_SIGHAND`), then unblocks everything, as an exec'd program
//! expects.
//!
//! # Failures
//!
//! A body that fails stores its [`Failure`] (the step and the `errno`) in
//! memory the parent reads once the clone returns, and exits with 127; the
//! parent reaps it and returns the error, so a spawn error says which step
//! failed. The child's pidfd (`CLONE_PIDFD`, close-on-exec) comes back with
//! the pid: [`super::child::Child`] waits on it. Linux 5.2 or later.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::libc;
use nix::sys::wait::{waitid, Id, WaitPidFlag};

/// The child's stack until `execve`: the body runs a few frames of system
/// calls; 128 KiB leaves room for any of them.
const STACK_LEN: usize = 128 << 10;

/// Which step of the child's start failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Placing stdin, stdout or stderr.
    Stdio = 1,
    /// Changing to the working directory.
    Directory,
    /// Its own process group.
    Group,
    /// `PR_SET_PDEATHSIG`.
    DeathSignal,
    /// The supervisor died before the death signal was set.
    ParentGone,
    /// Its CPU set.
    Affinity,
    /// Its limits, groups, gid or uid.
    Credentials,
    /// Placing the descriptors it inherits.
    Descriptors,
    /// The `execve` itself.
    Exec,
}

impl Stage {
    const ALL: [Stage; 9] = [
        Stage::Stdio,
        Stage::Directory,
        Stage::Group,
        Stage::DeathSignal,
        Stage::ParentGone,
        Stage::Affinity,
        Stage::Credentials,
        Stage::Descriptors,
        Stage::Exec,
    ];
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Stdio => "placing stdio",
            Stage::Directory => "changing directory",
            Stage::Group => "setpgid",
            Stage::DeathSignal => "PR_SET_PDEATHSIG",
            Stage::ParentGone => "the supervisor exited during the spawn",
            Stage::Affinity => "sched_setaffinity",
            Stage::Credentials => "setting limits or credentials",
            Stage::Descriptors => "placing descriptors",
            Stage::Exec => "exec",
        })
    }
}

/// A step of the child's start that failed, with its `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    pub(crate) errno: i32,
}

impl Failure {
    /// The failure of `stage` with the calling thread's `errno`. In the
    /// child: reads errno, allocates nothing.
    pub(crate) fn last(stage: Stage) -> Self {
        Self {
            stage,
            errno: io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO),
        }
    }

    fn encode(self) -> u64 {
        (u64::from(self.stage as u8) << 32) | u64::from(self.errno as u32)
    }

    fn decode(word: u64) -> Option<Self> {
        let stage = *Stage::ALL.get(((word >> 32) as usize).checked_sub(1)?)?;
        Some(Self {
            stage,
            errno: word as u32 as i32,
        })
    }
}

impl From<Failure> for io::Error {
    fn from(f: Failure) -> Self {
        let os = io::Error::from_raw_os_error(f.errno);
        if f.stage == Stage::ParentGone {
            return io::Error::other(f.stage.to_string());
        }
        io::Error::new(os.kind(), format!("{}: {os}", f.stage))
    }
}

/// A child that has `exec`ed (or died trying without saying why).
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
}

/// What the parent and the child share during the clone.
struct Shared<'a> {
    body: &'a mut (dyn FnMut() -> Failure + 'a),
    failure: AtomicU64,
}

/// Starts a child that runs `body`, which must `execve` (and so never
/// return) or return why it could not. See the module docs for what
/// `body` may do: system calls on values built before, nothing more.
pub(crate) fn launch(body: &mut (dyn FnMut() -> Failure + '_)) -> io::Result<Launched> {
    let stack = Stack::new()?;
    let mut shared = Shared {
        body,
        failure: AtomicU64::new(0),
    };
    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    let pid = {
        let _blocked = BlockedSignals::new();
        #[allow(unsafe_code)]
        // SAFETY: `child_main` runs on `stack` (mapped, writable, its top
        // 16-byte aligned) with a pointer to `shared`, which outlives the
        // child's use of it: with CLONE_VFORK this thread waits here until
        // the child has exec'd or exited. `pidfd` receives the pidfd
        // (CLONE_PIDFD stores it through the parent-tid argument).
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags,
                std::ptr::from_mut(&mut shared).cast::<c_void>(),
                std::ptr::from_mut(&mut pidfd),
            )
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: the kernel stored a new descriptor there, ours alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    match Failure::decode(shared.failure.load(Ordering::Acquire)) {
        None => Ok(Launched {
            pid: pid as u32,
            pidfd,
        }),
        Some(failure) => {
            // It has exited (the body returned): reap it now.
            let _ = waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED);
            Err(failure.into())
        }
    }
}

/// The child's entry: signals reset, the body, and its failure stored.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    #[allow(unsafe_code)]
    // SAFETY: `launch` passed a pointer to its `Shared`, alive and not
    // touched by the parent until this child has exec'd or exited.
    let shared = unsafe { &mut *arg.cast::<Shared<'_>>() };
    default_signals();
    let failure = (shared.body)();
    shared.failure.store(failure.encode(), Ordering::Release);
    #[allow(unsafe_code)]
    // SAFETY: ends this child only (its own thread group); runs no atexit
    // handler of the parent's.
    unsafe {
        libc::_exit(127)
    }
}

/// In the child: every caught signal (and SIGPIPE) back to its default,
/// then nothing blocked.
fn default_signals() {
    #[allow(unsafe_code)]
    // SAFETY: sigaction and sigprocmask on this child's own handler table
    // and mask (no CLONE_SIGHAND), with zeroed structs of the right type.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..libc::SIGRTMAX() + 1 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue; // one glibc keeps for itself
            }
            let ignored = old.sa_sigaction == libc::SIG_IGN && signal != libc::SIGPIPE;
            if old.sa_sigaction != libc::SIG_DFL && !ignored {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Every signal blocked on this thread while it lives; the old mask back
/// at drop.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn new() -> Self {
        #[allow(unsafe_code)]
        // SAFETY: plain calls on local, zero-initialized sigsets.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            Self(old)
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: restores the mask saved by `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

/// The child's stack: [`STACK_LEN`] bytes over one inaccessible guard
/// page, so an overflow faults instead of writing into the parent's memory.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Self> {
        let guard = super::page_size() as usize;
        let len = STACK_LEN + guard;
        #[allow(unsafe_code)]
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base, len };
        #[allow(unsafe_code)]
        // SAFETY: the lowest page of our own mapping.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The top of the stack (stacks grow down); page-aligned.
    fn top(&self) -> *mut c_void {
        self.base.wrapping_byte_add(self.len)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: our mapping, no longer used (the child has exec'd or exited).
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
