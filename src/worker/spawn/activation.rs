//! Socket activation: the child gets listening sockets at fds 3, 4, … with
//! `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID`, the systemd convention
//! (`sd_listen_fds(3)`) that many servers and the `listenfd` crate read.
//!
//! `LISTEN_PID` must be the child's own pid, which nobody knows before the
//! fork, and `std::process::Command` builds the child's environment block
//! before it forks (a `setenv` in `pre_exec` is lost, and would allocate and
//! lock besides). So a socket-activated child is exec'd by us, from the
//! closure `pre_exec` runs in the child: everything `execve(2)` needs (the
//! resolved program path, argv, the whole environment, the pointer arrays,
//! a buffer for the pid digits) is built here, in the parent, before the
//! fork; in the child only async-signal-safe calls remain (`fcntl`, `dup2`,
//! `getpid`, `execve`), with no allocation and no lock.
//!
//! The descriptors: every source (the listening sockets, and a protocol
//! worker's socket and fd channel) is first copied out of the target range
//! with `F_DUPFD_CLOEXEC`, so placing one can never overwrite another not
//! yet placed; then each copy is `dup2`ed onto its target, which clears
//! close-on-exec on the target alone. The copies, like every other fd of
//! the supervisor, close at `execve`.
//!
//! Differences from std's own exec, all in the failure path or at the
//! edges: a bare program name is looked up in the child's `PATH` here,
//! before the fork ([`find_program`]), and a file that is not an
//! executable format is not retried through `/bin/sh` as `execvp` does. If
//! the exec fails after the descriptors were placed, and std's error pipe
//! happened to sit in the target range, the parent sees a spawn that
//! succeeded and a child that exits at once (a failed start), instead of
//! the spawn error.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::raw::c_char;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::libc;

/// The first fd of the activation range (systemd's `SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;
const LISTEN_PID: &[u8] = b"LISTEN_PID=";
/// `LISTEN_PID=` and room for the digits of any pid (`u32`) and the NUL.
const PID_ENTRY_LEN: usize = LISTEN_PID.len() + 10 + 1;

/// Everything the child needs to place its descriptors and exec itself,
/// built before the fork.
pub(super) struct Exec {
    /// Descriptors to place, in order, at `LISTEN_FDS_START`, `+1`, ….
    sources: Vec<RawFd>,
    /// Their copies above the target range (filled in the child).
    copies: Vec<RawFd>,
    path: CString,
    _argv: Vec<CString>,
    _env: Vec<CString>,
    /// `LISTEN_PID=<digits>\0`, the digits written in the child.
    pid_entry: [u8; PID_ENTRY_LEN],
    argv_ptrs: Vec<*const c_char>,
    /// The environment, then the slot for `pid_entry`, then NULL.
    envp_ptrs: Vec<*const c_char>,
}

#[allow(unsafe_code)]
// SAFETY: the raw pointers point into the heap buffers of `_argv` and
// `_env`, owned by this same value (a `CString`'s buffer does not move when
// the `CString` does), and into nothing else until the child sets the pid
// slot. They are only dereferenced by `execve` in the forked child, which
// has one thread; in the parent the value is only moved and dropped.
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
    /// as configured so far, on top of ours) with `sources` placed at
    /// `LISTEN_FDS_START..`; `arg0`, if given, is its `argv[0]` in place of
    /// the program (`Command` keeps the one set by `arg0` to itself).
    pub(super) fn new(
        cmd: &std::process::Command,
        arg0: Option<&str>,
        sources: Vec<RawFd>,
    ) -> io::Result<Self> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (key, value) in cmd.get_envs() {
            env.retain(|(k, _)| k != key);
            if let Some(v) = value {
                env.push((key.to_owned(), v.to_owned()));
            }
        }
        env.retain(|(k, _)| k.as_bytes() != &LISTEN_PID[..LISTEN_PID.len() - 1]);
        let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
        let program = Path::new(cmd.get_program());
        let path = find_program(program, path_var).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
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
        let envp_ptrs = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([std::ptr::null(), std::ptr::null()])
            .collect();
        Ok(Self {
            copies: vec![-1; sources.len()],
            sources,
            path,
            _argv: argv,
            _env: env,
            pid_entry,
            argv_ptrs,
            envp_ptrs,
        })
    }

    /// In the child: places the descriptors, writes `LISTEN_PID` and execs.
    /// Returns only if something failed, with the error.
    ///
    /// # Safety
    ///
    /// Only in a forked child before exec (the `pre_exec` closure): it
    /// replaces descriptors 3… and the process image. Makes only
    /// async-signal-safe calls and allocates nothing.
    #[allow(unsafe_code)]
    pub(super) unsafe fn exec(&mut self) -> io::Error {
        let limit = LISTEN_FDS_START + self.sources.len() as RawFd;
        for (copy, &source) in self.copies.iter_mut().zip(&self.sources) {
            // SAFETY: fcntl on an fd number; a closed one is EBADF.
            let fd = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, limit) };
            if fd < 0 {
                return io::Error::last_os_error();
            }
            *copy = fd;
        }
        for (target, &copy) in (LISTEN_FDS_START..).zip(&self.copies) {
            // SAFETY: dup2 between fd numbers; `copy` is open (above).
            if unsafe { libc::dup2(copy, target) } < 0 {
                return io::Error::last_os_error();
            }
        }
        // Exactly stdio and its sockets cross the exec.
        super::cloexec_from(limit);
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() } as u32;
        let end = LISTEN_PID.len() + write_decimal(&mut self.pid_entry[LISTEN_PID.len()..], pid);
        self.pid_entry[end] = 0;
        let slot = self.envp_ptrs.len() - 2;
        self.envp_ptrs[slot] = self.pid_entry.as_ptr().cast();
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
        io::Error::last_os_error()
    }
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
        let exec = Exec::new(&cmd, Some("myapp web:01"), vec![]).expect("sh is found");
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
        let exec = Exec::new(&cmd, None, vec![]).expect("sh is found");
        assert!(exec._env.iter().any(|e| e.as_bytes() == b"A_VAR=x"));
        assert_eq!(exec._argv[0].as_bytes(), b"sh");
        assert!(!exec._env.iter().any(|e| e.as_bytes().starts_with(LISTEN_PID)));
        assert_eq!(exec.envp_ptrs.len(), exec._env.len() + 2);
        assert!(exec.envp_ptrs[exec.envp_ptrs.len() - 2].is_null());
    }
}
