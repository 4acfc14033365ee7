//! The child's `execve`, prepared before the clone, and socket
//! activation: listening sockets at fds 3, 4, … with `LISTEN_FDS`,
//! `LISTEN_FDNAMES` and `LISTEN_PID`, the systemd convention
//! (`sd_listen_fds(3)`) that many servers and the `listenfd` crate read.
//!
//! The child runs in the supervisor's memory until it execs (see
//! [`super::launch`]), so everything `execve(2)` needs (the resolved
//! program path, argv, the whole environment, the pointer arrays, a buffer
//! for the pid digits) is built here, before the clone; in the child only
//! system calls remain (`fcntl`, `close_range`, `dup2`, `getpid`,
//! `execve`), with no allocation and no lock. `LISTEN_PID` must be the
//! child's own pid, which nobody knows before the clone: the child writes
//! its digits into the slot kept for them.
//!
//! The descriptors. Every descriptor from 3 up is marked close-on-exec
//! first, so that nothing the process holds without the flag (a host
//! program's stray descriptor) leaks into a worker. Without activation the
//! sources (a protocol worker's socket and fd channel) then lose the flag
//! where they are. With activation every source (the listening sockets,
//! then the protocol's two) is first copied out of the target range with
//! `F_DUPFD_CLOEXEC`, so placing one can never overwrite another not yet
//! placed; then each copy is `dup2`ed onto its target, which clears
//! close-on-exec on the target alone.
//!
//! Differences from std's own exec, at the edges: a bare program name is
//! looked up in the child's `PATH` here, before the clone
//! ([`find_program`]); a relative path with a `/` is taken from the
//! supervisor's working directory (where the start checks found it), not
//! the worker's; and a file that is not an executable format is not
//! retried through `/bin/sh` as `execvp` does.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::raw::c_char;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::libc;

use super::launch::{Failure, Stage};

/// The first fd of the activation range (systemd's `SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;
const LISTEN_PID: &[u8] = b"LISTEN_PID=";
/// `LISTEN_PID=` and room for the digits of any pid (`u32`) and the NUL.
const PID_ENTRY_LEN: usize = LISTEN_PID.len() + 10 + 1;

/// Everything the child needs to place its descriptors and exec itself,
/// built before the clone.
pub(super) struct Exec {
    /// Descriptors the program inherits: in order at `LISTEN_FDS_START`,
    /// `+1`, … with activation, where they are without.
    sources: Vec<RawFd>,
    activation: bool,
    /// Their copies above the target range (filled in the child).
    copies: Vec<RawFd>,
    path: CString,
    _argv: Vec<CString>,
    _env: Vec<CString>,
    /// `LISTEN_PID=<digits>\0`, the digits written in the child.
    pid_entry: [u8; PID_ENTRY_LEN],
    argv_ptrs: Vec<*const c_char>,
    /// The environment, then (with activation) the slot for `pid_entry`,
    /// then NULL.
    envp_ptrs: Vec<*const c_char>,
}

#[allow(unsafe_code)]
// SAFETY: the raw pointers point into the heap buffers of `_argv` and
// `_env`, owned by this same value (a `CString`'s buffer does not move when
// the `CString` does), and into nothing else until the child sets the pid
// slot. They are only dereferenced by `execve` in the child, while the
// thread that built the value waits for it; otherwise the value is only
// moved and dropped.
unsafe impl Send for Exec {}
#[allow(unsafe_code)]
// SAFETY: as for `Send`; no method reads through the pointers from `&self`.
unsafe impl Sync for Exec {}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("path", &self.path)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Exec {
    /// Prepares the exec of `cmd` (its program, arguments and environment
    /// as configured so far, on top of ours); `arg0`, if given, is its
    /// `argv[0]` in place of the program (`Command` keeps the one set by
    /// `arg0` to itself). With `activation`, `sources` go to
    /// `LISTEN_FDS_START..` and `LISTEN_PID` is set; without, they are
    /// inherited where they are.
    pub(super) fn new(
        cmd: &std::process::Command,
        arg0: Option<&str>,
        sources: Vec<RawFd>,
        activation: bool,
    ) -> io::Result<Self> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (key, value) in cmd.get_envs() {
            env.retain(|(k, _)| k != key);
            if let Some(v) = value {
                env.push((key.to_owned(), v.to_owned()));
            }
        }
        if activation {
            env.retain(|(k, _)| k.as_bytes() != &LISTEN_PID[..LISTEN_PID.len() - 1]);
        }
        let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
        let program = absolute(Path::new(cmd.get_program()))?;
        let path =
            find_program(&program, path_var).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let path = cstring(path.into_os_string().into_vec())?;
        let argv = std::iter::once(arg0.map_or(cmd.get_program(), OsStr::new))
            .chain(cmd.get_args())
            .map(|a| cstring(a.as_bytes().to_vec()))
            .collect::<io::Result<Vec<_>>>()?;
        let env = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(kv)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut pid_entry = [0u8; PID_ENTRY_LEN];
        pid_entry[..LISTEN_PID.len()].copy_from_slice(LISTEN_PID);
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let slots = if activation { 2 } else { 1 };
        let envp_ptrs = env
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::repeat_n(std::ptr::null(), slots))
            .collect();
        Ok(Self {
            copies: vec![-1; sources.len()],
            sources,
            activation,
            path,
            _argv: argv,
            _env: env,
            pid_entry,
            argv_ptrs,
            envp_ptrs,
        })
    }

    /// In the child: places the descriptors, writes `LISTEN_PID` (with
    /// activation) and execs. Returns only if something failed, with why.
    ///
    /// # Safety
    ///
    /// Only in the child before its exec (see [`super::launch`]): it
    /// changes descriptors 3… and replaces the process image. Makes only
    /// system calls and allocates nothing.
    #[allow(unsafe_code)]
    pub(super) unsafe fn exec(&mut self) -> Failure {
        if let Err(failure) = self.place() {
            return failure;
        }
        if self.activation {
            // SAFETY: getpid cannot fail.
            let pid = unsafe { libc::getpid() } as u32;
            let end = LISTEN_PID.len() + write_decimal(&mut self.pid_entry[LISTEN_PID.len()..], pid);
            self.pid_entry[end] = 0;
            let slot = self.envp_ptrs.len() - 2;
            self.envp_ptrs[slot] = self.pid_entry.as_ptr().cast();
        }
        // SAFETY: `path` and every pointer in the two arrays point to
        // NUL-terminated strings owned by `self`, and both arrays end with
        // NULL; `self` outlives the call (it only returns on failure).
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            )
        };
        Failure::last(Stage::Exec)
    }

    /// In the child: exactly stdio and the sources cross the exec.
    #[allow(unsafe_code)]
    fn place(&mut self) -> Result<(), Failure> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(Failure::last(Stage::Descriptors))
            } else {
                Ok(rc)
            }
        };
        if !self.activation {
            cloexec_from(LISTEN_FDS_START);
            for &source in &self.sources {
                // SAFETY: fcntl on an fd number; a closed one is EBADF.
                check(unsafe { libc::fcntl(source, libc::F_SETFD, 0) })?;
            }
            return Ok(());
        }
        let limit = LISTEN_FDS_START + self.sources.len() as RawFd;
        for (copy, &source) in self.copies.iter_mut().zip(&self.sources) {
            // SAFETY: fcntl on an fd number; a closed one is EBADF.
            *copy = check(unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, limit) })?;
        }
        cloexec_from(limit);
        for (target, &copy) in (LISTEN_FDS_START..).zip(&self.copies) {
            // SAFETY: dup2 between fd numbers; `copy` is open (above).
            check(unsafe { libc::dup2(copy, target) })?;
        }
        Ok(())
    }
}

/// In the child: marks every descriptor from `first` up close-on-exec. A
/// kernel without `close_range` (before 5.11 for the flag) keeps relying
/// on close-on-exec alone.
fn cloexec_from(first: RawFd) {
    #[allow(unsafe_code)]
    // SAFETY: a raw syscall on fd numbers only.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// A relative program path with a `/` in it, made absolute against our
/// working directory (the child may change its own first); anything else
/// as it is.
fn absolute(program: &Path) -> io::Result<std::borrow::Cow<'_, Path>> {
    if program.is_relative() && program.components().count() > 1 {
        return Ok(std::env::current_dir()?.join(program).into());
    }
    Ok(program.into())
}

/// Writes `n` in decimal at the start of `buf` (at least 10 bytes long);
/// returns the number of digits. No allocation: the child calls it.
fn write_decimal(buf: &mut [u8], mut n: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        buf[i] = *d;
    }
    len
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Finds `program` as `exec` would: a path (any `/` in it) as is, a bare
/// name in the directories of `path` (a `PATH` value); `None` if it is not
/// an executable file.
pub(crate) fn find_program(program: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.components().count() > 1 {
        return is_exe(program).then(|| program.to_owned());
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| is_exe(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_replaces_argv0_and_keeps_the_program_path() {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c");
        let exec = Exec::new(&cmd, Some("myapp web:01"), vec![], false).expect("sh is found");
        let argv: Vec<&[u8]> = exec._argv.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(argv, [&b"myapp web:01"[..], b"-c"]);
        assert!(exec.path.as_bytes().ends_with(b"/sh"));
    }

    #[test]
    fn decimal_digits_without_allocation() {
        let mut buf = [0u8; 10];
        for n in [0u32, 7, 10, 4_194_304, u32::MAX] {
            let len = write_decimal(&mut buf, n);
            assert_eq!(&buf[..len], n.to_string().as_bytes());
        }
    }

    #[test]
    fn programs_are_found_as_exec_would() {
        let path = std::env::var_os("PATH");
        let sh = find_program(Path::new("sh"), path.as_deref()).expect("sh on PATH");
        assert!(sh.is_absolute());
        assert_eq!(
            find_program(Path::new("/bin/sh"), None),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            find_program(Path::new("no-such-program-here"), path.as_deref()),
            None
        );
        assert_eq!(
            find_program(Path::new("sh"), None),
            None,
            "a bare name needs a PATH"
        );
    }

    #[test]
    fn the_environment_block_has_a_pid_slot_and_no_inherited_listen_pid() {
        let mut cmd = std::process::Command::new("sh");
        cmd.env("LISTEN_PID", "1").env("A_VAR", "x");
        let exec = Exec::new(&cmd, None, vec![], true).expect("sh is found");
        assert!(exec._env.iter().any(|e| e.as_bytes() == b"A_VAR=x"));
        assert_eq!(exec._argv[0].as_bytes(), b"sh");
        assert!(!exec._env.iter().any(|e| e.as_bytes().starts_with(LISTEN_PID)));
        assert_eq!(exec.envp_ptrs.len(), exec._env.len() + 2);
        assert!(exec.envp_ptrs[exec.envp_ptrs.len() - 2].is_null());
        // Without activation the environment passes as it is, slot-free.
        let plain = Exec::new(&cmd, None, vec![], false).expect("sh is found");
        assert!(plain._env.iter().any(|e| e.as_bytes() == b"LISTEN_PID=1"));
        assert_eq!(plain.envp_ptrs.len(), plain._env.len() + 1);
    }

    #[test]
    fn a_relative_program_path_is_taken_from_our_directory() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("./w")).unwrap(), here.join("./w"));
        assert_eq!(absolute(Path::new("sh")).unwrap(), Path::new("sh"));
        assert_eq!(absolute(Path::new("/bin/sh")).unwrap(), Path::new("/bin/sh"));
    }
}
