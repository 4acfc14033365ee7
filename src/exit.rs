//! Process exit codes for a host program that runs a supervisor (a
//! `nanny`-style daemon): what its `main` should return, so that an init
//! system, a container runtime or a shell can tell a clean stop from a
//! failure. The codes follow `sysexits.h` where one fits, and the shell's
//! `128 + N` for a death by signal `N`.
//!
//! | code | constant | when |
//! |---|---|---|
//! | 0 | [`CLEAN`] | the supervisor stopped gracefully: a soft kill (one begun by SIGTERM, SIGINT or SIGQUIT included) served what it had and reaped every worker |
//! | 1 | [`FAILED`] | it ran, then failed: a pool spent its restart budget and the host gave up |
//! | 69 | [`UNAVAILABLE`] | it could not start: a pool failed to get ready, a socket could not be bound, or it stopped while starting |
//! | 78 | [`CONFIG`] | the configuration was refused before anything was spawned |
//! | 128 + N | [`killed_by`]`(N)` | a second stop signal `N` hard-killed it (the graceful stop did not complete) |
//!
//! A stop signal that ends in a completed graceful stop reports 0, not
//! 128 + N: the host did what the signal asked and lost nothing, and a
//! service manager counts 0 as success where it would count 143 (SIGTERM)
//! as a failure unless told otherwise (systemd's `SuccessExitStatus=`).
//!
//! ```no_run
//! # async fn run() -> std::process::ExitCode {
//! let supervisor = match nanny::Supervisor::builder()
//!     .pool(nanny::Pool::default_pool(nanny::WorkerSpec::new("./worker")))
//!     .handle_signals(true)
//!     .start()
//!     .await
//! {
//!     Ok(s) => s,
//!     Err(e) => {
//!         eprintln!("{e}");
//!         return nanny::exit::code(e.exit_code());
//!     }
//! };
//! supervisor.closed().await;
//! let code = supervisor.stop_signal().map_or(nanny::exit::CLEAN, |s| s.exit_code());
//! nanny::exit::code(code)
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::error::StartError;
use crate::supervisor::Supervisor;

/// The supervisor stopped gracefully (`EXIT_SUCCESS`).
pub const CLEAN: i32 = 0;
/// The supervisor ran, then failed (a pool failed), and the host gives up
/// (`EXIT_FAILURE`).
pub const FAILED: i32 = 1;
/// The supervisor could not start (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: i32 = 69;
/// The configuration was refused (`EX_CONFIG`).
pub const CONFIG: i32 = 78;

/// The code for a death by `signal`: `128 + N`, as a shell reports it.
pub fn killed_by(signal: Signal) -> i32 {
    128 + signal as i32
}

/// `code` as a [`std::process::ExitCode`] (an exit status is one byte:
/// `code` is taken modulo 256, as `exit(3)` does).
pub fn code(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(code as u8)
}

impl StartError {
    /// The exit code a host that cannot start should exit with: [`CONFIG`]
    /// for a refused configuration, [`UNAVAILABLE`] for any other failure
    /// to start.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => CONFIG,
            StartError::PoolFailed { .. } | StartError::Bind(_) | StartError::Stopped => UNAVAILABLE,
        }
    }
}

/// The stop signal that ended a supervisor that handles signals
/// ([`Builder::handle_signals`](crate::Builder::handle_signals)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopSignal {
    /// The last stop signal taken (SIGTERM, SIGINT or SIGQUIT).
    pub signal: Signal,
    /// Whether it hard-killed the supervisor: it was the second one, and
    /// the graceful stop the first one began did not complete.
    pub forced: bool,
}

impl StopSignal {
    /// [`CLEAN`] after a graceful stop, [`killed_by`] the signal after a
    /// forced one.
    pub fn exit_code(&self) -> i32 {
        if self.forced {
            killed_by(self.signal)
        } else {
            CLEAN
        }
    }
}

impl Supervisor {
    /// The stop signal taken, if one was (only with
    /// [`handle_signals`](crate::Builder::handle_signals)); read it once
    /// [`closed`](Self::closed) resolves to choose an exit code.
    pub fn stop_signal(&self) -> Option<StopSignal> {
        self.stop_signal.get()
    }
}

/// Where the signal handler records the stop signals it took, for
/// [`Supervisor::stop_signal`]: 0 for none, else the signal number, plus
/// [`FORCED`] for a hard kill.
#[derive(Debug, Default)]
pub(crate) struct SignalRecord(AtomicU32);

const FORCED: u32 = 1 << 16;

impl SignalRecord {
    /// A new, shared record.
    pub(crate) fn shared() -> Arc<Self> {
        Arc::default()
    }

    /// The handler took `signal`; `forced` if it hard-kills.
    pub(crate) fn record(&self, signal: Signal, forced: bool) {
        let bits = signal as u32 | if forced { FORCED } else { 0 };
        self.0.store(bits, Ordering::Release);
    }

    fn get(&self) -> Option<StopSignal> {
        let bits = self.0.load(Ordering::Acquire);
        let signal = Signal::try_from((bits & !FORCED) as i32).ok()?;
        Some(StopSignal {
            signal,
            forced: bits & FORCED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConfigError;

    #[test]
    fn start_errors_map_to_config_or_unavailable() {
        assert_eq!(StartError::Config(ConfigError::NoPools).exit_code(), CONFIG);
        let failed = StartError::PoolFailed { pool: "a".into() };
        assert_eq!(failed.exit_code(), UNAVAILABLE);
        assert_eq!(StartError::Stopped.exit_code(), UNAVAILABLE);
    }

    #[test]
    fn a_signal_death_is_128_plus_its_number() {
        assert_eq!(killed_by(Signal::SIGTERM), 143);
        assert_eq!(killed_by(Signal::SIGINT), 130);
        assert_eq!(killed_by(Signal::SIGQUIT), 131);
    }

    #[test]
    fn the_record_keeps_the_last_signal_and_whether_it_forced() {
        let r = SignalRecord::default();
        assert_eq!(r.get(), None);
        r.record(Signal::SIGTERM, false);
        let graceful = r.get().unwrap();
        assert_eq!(
            (graceful.signal, graceful.forced, graceful.exit_code()),
            (Signal::SIGTERM, false, CLEAN)
        );
        r.record(Signal::SIGINT, true);
        let forced = r.get().unwrap();
        assert_eq!(
            (forced.signal, forced.forced, forced.exit_code()),
            (Signal::SIGINT, true, 130)
        );
    }
}
