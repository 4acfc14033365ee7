//! `nanny run FILE`: load, start, wait until closed, and choose the exit
//! code (`nanny::exit`).

use std::path::Path;

use nanny::{exit, StartError};

/// Runs the file's supervisor to its end; returns the process's exit code.
pub(crate) fn run(file: &Path) -> i32 {
    let loaded = match crate::config::load(file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("nanny: {e}");
            return exit::CONFIG;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nanny: cannot start the runtime: {e}");
            return exit::UNAVAILABLE;
        }
    };
    runtime.block_on(supervise(loaded))
}

async fn supervise(mut loaded: crate::config::Loaded) -> i32 {
    let builder = std::mem::take(&mut loaded.builder).handle_signals(true);
    let supervisor = match builder.start().await {
        Ok(s) => s,
        Err(StartError::Config(e)) => {
            eprintln!("nanny: {}", loaded.locate(&e));
            return exit::CONFIG;
        }
        Err(e) => {
            eprintln!("nanny: {}: cannot start: {e}", loaded.path().display());
            return e.exit_code();
        }
    };
    tracing::info!(file = %loaded.path().display(), "nanny running: every worker is ready");
    supervisor.closed().await;
    let code = supervisor.stop_signal().map_or(exit::CLEAN, |s| s.exit_code());
    tracing::info!(code, "nanny stopped");
    code
}
