//! Nothing outlives its worker: how the processes a worker starts are kept
//! from surviving it, or the supervisor.
//!
//! A worker dies with a SIGKILLed supervisor by itself
//! (`PR_SET_PDEATHSIG`), and a graceful stop signals its whole process
//! group. That leaves out what a worker *starts*: a child outlives it as an
//! orphan, and one that left the group (`setsid`, a daemon's double fork)
//! never even sees the stop signal. Such orphans hold ports and files that
//! the worker's replacement then cannot take.
//!
//! With [`Containment::Namespace`] each worker runs as pid 2 of a PID
//! namespace of its own, whose pid 1 is the small `nanny-init` program
//! (see `src/bin/nanny_init.rs`), and everything it starts is in that
//! namespace too. nanny knows, signals and samples the worker by its host
//! pid; `LISTEN_PID` is 2, as the worker sees itself. Then:
//!
//! | what happens | what becomes of the worker's descendants |
//! |---|---|
//! | the worker exits (stop, crash, kill) | SIGTERM to every one of them, group or not; SIGKILL after the pool's `force_stop_delay`; the exit is reported once they are gone |
//! | a hard kill | SIGKILL at once, with the worker |
//! | the supervisor is SIGKILLed | SIGKILL by the kernel (nanny-init dies with the supervisor, and a namespace ends with its pid 1) |
//!
//! It needs the privilege to create PID namespaces (`CAP_SYS_ADMIN`: root,
//! or a container allowed `unshare`) and the `nanny-init` program, found as
//! [`Builder::init_program`](crate::Builder::init_program) says. nanny
//! tries both once at start, and without them falls back to
//! [`Containment::ProcessGroup`], saying why in a warning and in
//! [`Inspect::containment`](crate::Inspect::containment): the worker's
//! process group is still signalled (SIGTERM once the worker has exited,
//! SIGKILL with a hard kill), but a descendant that left it, or any
//! descendant once the supervisor is SIGKILLed, can live on.
//!
//! Inside the namespace, processes see namespace pids (the worker's
//! children get pid 2, 3, …, and `getppid()` is 0 for a direct child of
//! the worker, whose parent is outside); the host sees host pids.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The program's file name, looked up beside the running program and in
/// `PATH`.
pub const INIT_PROGRAM: &str = "nanny-init";
/// The environment variable naming the program, before the lookup.
pub const INIT_ENV: &str = "NANNY_INIT";

/// How the workers' descendants are kept from outliving them (see the
/// [module](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Containment {
    /// A PID namespace per worker, `init` its pid 1: nothing a worker
    /// started outlives it or the supervisor.
    Namespace {
        /// The `nanny-init` program in use.
        init: PathBuf,
    },
    /// The worker's process group alone: descendants that leave it, and
    /// every descendant after a SIGKILL of the supervisor, can outlive the
    /// worker.
    ProcessGroup {
        /// Why not a namespace: switched off, no `nanny-init`, or no
        /// privilege (the error).
        why: String,
    },
}

/// The user's choice ([`Builder::contain_descendants`](crate::Builder::contain_descendants),
/// [`Builder::init_program`](crate::Builder::init_program)).
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub(crate) enabled: bool,
    pub(crate) program: Option<PathBuf>,
}

impl Default for Choice {
    fn default() -> Self {
        Self {
            enabled: true,
            program: None,
        }
    }
}

/// A `nanny-init` that was tried and works.
#[derive(Debug)]
pub(crate) struct Init {
    pub(crate) path: PathBuf,
}

/// Decides, once at start: the init to put in each worker's spawn, and what
/// that means, said in the log.
pub(crate) fn choose(choice: &Choice) -> (Option<std::sync::Arc<Init>>, Containment) {
    let outcome = if choice.enabled {
        locate(choice.program.as_deref()).and_then(|path| {
            probe(&path)?;
            Ok(Init { path })
        })
    } else {
        Err("switched off (contain_descendants(false))".to_owned())
    };
    match outcome {
        Ok(init) => {
            tracing::debug!(init = %init.path.display(), "descendants: a PID namespace per worker");
            let containment = Containment::Namespace {
                init: init.path.clone(),
            };
            (Some(std::sync::Arc::new(init)), containment)
        }
        Err(why) => fallback(why),
    }
}

fn fallback(why: String) -> (Option<std::sync::Arc<Init>>, Containment) {
    tracing::warn!(
        %why,
        "descendants: no PID namespace per worker; a process a worker starts that leaves its \
         process group, or any after a SIGKILL of the supervisor, can outlive it"
    );
    (None, Containment::ProcessGroup { why })
}

/// The program: `given`, else `$NANNY_INIT`, else `nanny-init` beside the
/// running program (or beside cargo's `deps` / `examples` directory it
/// runs from), else in `PATH`.
fn locate(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os(INIT_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?;
        // Cargo's tests, benches and examples run from `target/…/deps` or
        // `target/…/examples`, a level below the package's binaries.
        let up = dir
            .file_name()
            .filter(|n| *n == "deps" || *n == "examples")
            .and_then(|_| dir.parent());
        std::iter::once(dir)
            .chain(up)
            .map(|d| d.join(INIT_PROGRAM))
            .find(|p| p.is_file())
    });
    let path_var: Option<OsString> = std::env::var_os("PATH");
    beside
        .or_else(|| {
            crate::worker::spawn::find_program(Path::new(OsStr::new(INIT_PROGRAM)), path_var.as_deref())
        })
        .ok_or_else(|| format!("no {INIT_PROGRAM} beside this program or in PATH (set {INIT_ENV})"))
}

/// Runs `init --probe`: may this process create a PID namespace and a
/// first process in it, and does the program run?
fn probe(init: &Path) -> Result<(), String> {
    let out = std::process::Command::new(init)
        .arg("--probe")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", init.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{} --probe: {} ({})",
            init.display(),
            said.trim(),
            out.status
        ))
    }
}
