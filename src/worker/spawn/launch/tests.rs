//! The launch against real children: exec, a failed step, signals.

use super::*;
use std::ffi::CString;

/// A body that execs `sh -c script` with an empty environment.
pub(in crate::worker::spawn) fn exec_sh(script: &str) -> impl FnMut() -> Failure {
    let sh = CString::new("/bin/sh").unwrap();
    let argv_owned = [c"sh".to_owned(), c"-c".to_owned(), CString::new(script).unwrap()];
    move || {
        let argv: [*const libc::c_char; 4] = [
            argv_owned[0].as_ptr(),
            argv_owned[1].as_ptr(),
            argv_owned[2].as_ptr(),
            std::ptr::null(),
        ];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        #[allow(unsafe_code)]
        // SAFETY: NUL-terminated strings and NULL-terminated arrays.
        unsafe {
            libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr())
        };
        Failure::last(Stage::Exec)
    }
}

fn exit_code(launched: &Launched) -> i32 {
    match waitid(Id::PIDFd(launched.pidfd.as_fd()), WaitPidFlag::WEXITED).unwrap() {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("not an exit: {other:?}"),
    }
}

#[test]
fn a_child_execs_and_its_pidfd_reaps_it() {
    let mut body = exec_sh("exit 7");
    let launched = launch(&mut body).expect("launches");
    assert!(launched.pid > 0);
    assert_eq!(exit_code(&launched), 7);
}

#[test]
fn a_failed_step_comes_back_with_its_stage_and_errno() {
    let mut body = || {
        #[allow(unsafe_code)]
        // SAFETY: chdir on a NUL-terminated path.
        unsafe {
            libc::chdir(c"/no/such/directory/here".as_ptr())
        };
        Failure::last(Stage::Directory)
    };
    let error = launch(&mut body).expect_err("the body failed");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().starts_with("changing directory: "), "{error}");
}

#[test]
fn the_child_gets_default_signals_and_an_empty_mask() {
    // A caught signal and a blocked one here, and SIGPIPE ignored (std
    // does that in every Rust program), must not reach the child.
    let _caught = catch_and_block();
    // The handler is checked before the exec (which resets handlers
    // anyway), through the memory the child shares with us.
    static HANDLER_IN_CHILD: AtomicU64 = AtomicU64::new(u64::MAX);
    let out = std::env::temp_dir().join(format!("nanny-launch-signals-{}", std::process::id()));
    let mut exec = exec_sh(&format!(
        "grep -E '^Sig(Blk|Ign):' /proc/self/status > {}",
        out.display()
    ));
    let mut body = || {
        #[allow(unsafe_code)]
        // SAFETY: reads this child's disposition into a zeroed struct.
        let handler = unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(spare(), std::ptr::null(), &mut now);
            now.sa_sigaction
        };
        HANDLER_IN_CHILD.store(handler as u64, Ordering::Release);
        exec()
    };
    let launched = launch(&mut body).expect("launches");
    assert_eq!(exit_code(&launched), 0);
    assert_eq!(HANDLER_IN_CHILD.load(Ordering::Acquire), libc::SIG_DFL as u64);
    let status = std::fs::read_to_string(&out).expect("the child wrote its status");
    let _ = std::fs::remove_file(&out);
    let mask = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect("a mask line");
        u64::from_str_radix(line[name.len()..].trim(), 16).expect("hex")
    };
    assert_eq!(mask("SigBlk:"), 0, "blocked in the child: {status}");
    assert_eq!(
        mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {status}"
    );
}

/// A real-time signal nothing else here uses.
fn spare() -> c_int {
    libc::SIGRTMIN() + 9
}

/// Installs a do-nothing handler for a real-time signal nothing else
/// uses and blocks SIGUSR1 on this thread, restoring both at drop.
fn catch_and_block() -> impl Drop {
    extern "C" fn nothing(_: c_int) {}
    struct Restore(libc::sigaction, libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            #[allow(unsafe_code)]
            // SAFETY: restores what `catch_and_block` saved.
            unsafe {
                libc::sigaction(spare(), &self.0, std::ptr::null_mut());
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.1, std::ptr::null_mut());
            }
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: a handler that does nothing, and this thread's mask.
    unsafe {
        let mut handler: libc::sigaction = std::mem::zeroed();
        handler.sa_sigaction = nothing as *const () as usize;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(spare(), &handler, &mut old);
        let mut usr1: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut usr1);
        libc::sigaddset(&mut usr1, libc::SIGUSR1);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &usr1, &mut mask);
        Restore(old, mask)
    }
}
