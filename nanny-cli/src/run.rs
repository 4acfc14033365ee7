//! `nanny run FILE`: load, take the API's token, bind the API, take the
//! signals ([`crate::signals`]), start, serve until closed, and choose the
//! exit code (`nanny::exit`).

use std::path::Path;
use std::sync::Arc;

use nanny::{exit, StartError};

use crate::api::{self, auth, discovery};
use crate::{logs, metrics, reload, signals, systemd, upgrade};

/// Runs the file's supervisor to its end; returns the process's exit code.
/// `json`: nanny's log is JSON (workers' lines on stderr are then fields).
pub(crate) fn run(file: &Path, json: bool) -> i32 {
    // Before any thread exists: the sockets an upgrade or systemd passed.
    let mut inherited = upgrade::Inherited::take();
    inherited.sockets.extend(systemd::init());
    let loaded = match crate::config::load(file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("nanny: {e}");
            return exit::CONFIG;
        }
    };
    // Before any thread exists: `resolve` takes the token out of the
    // environment, so no worker inherits it.
    let token = if loaded.api.enabled {
        match auth::resolve(
            loaded.api.token_file.as_deref(),
            &loaded.api.state_dir,
            inherited.is_upgrade(),
        ) {
            Ok(token) => Some(token),
            Err(e) => {
                eprintln!("nanny: {}: {e}", loaded.path().display());
                return exit::CONFIG;
            }
        }
    } else {
        None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nanny: cannot start the runtime: {e}");
            return exit::UNAVAILABLE;
        }
    };
    let hub = match logs::Hub::start(&loaded.logs, json) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("nanny: {}: {e}", loaded.path().display());
            return exit::UNAVAILABLE;
        }
    };
    let code = runtime.block_on(supervise(loaded, token, hub.clone(), inherited));
    // The supervisor and its capture tasks have ended: what is queued for
    // the log files is written now.
    hub.finish();
    code
}

async fn supervise(
    mut loaded: crate::config::Loaded,
    token: Option<(auth::Token, auth::Origin)>,
    hub: logs::Hub,
    mut inherited: upgrade::Inherited,
) -> i32 {
    let bound = match (&token, loaded.api.enabled) {
        (Some(_), true) => match upgrade::bind_api(loaded.api.listen, &mut inherited).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                eprintln!("nanny: cannot bind the API on {}: {e}", loaded.api.listen);
                return exit::UNAVAILABLE;
            }
        },
        _ => None,
    };
    let upgrade = upgrade::Context::of(&token, bound.as_ref())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot take SIGUSR2: no upgrades"))
        .ok();
    loaded.builder = std::mem::take(&mut loaded.builder).inherit(std::mem::take(&mut inherited.sockets));
    let (supervisor, signals) = match start(&mut loaded, &hub).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let config: Arc<Path> = std::fs::canonicalize(loaded.path())
        .unwrap_or_else(|_| loaded.path().to_owned())
        .into();
    let server = match (bound, token) {
        (Some(bound), Some((token, origin))) => {
            let token_file = match origin {
                auth::Origin::File(path) => Some(std::fs::canonicalize(&path).unwrap_or(path)),
                auth::Origin::Environment => None,
            };
            let found = discovery::Discovery::new(bound.addr, token_file, config.to_path_buf());
            let api_file = match discovery::write(&loaded.api.state_dir, &found) {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::warn!("cannot write {}: {e}", discovery::API_FILE);
                    None
                }
            };
            tracing::info!(url = %found.url, "the API is listening");
            if !bound.addr.ip().is_loopback() {
                tracing::warn!(
                    addr = %bound.addr,
                    "the API listens on an address that is not loopback: put TLS in front of it, \
                     or its token crosses the network in clear"
                );
            }
            let restarts = metrics::Restarts::default();
            let counter = metrics::spawn_counter(&supervisor, restarts.clone());
            let state = api::AppState {
                supervisor: supervisor.clone(),
                config: Arc::clone(&config),
                restarts,
                logs: hub,
            };
            let router = api::router(state, token);
            Some((
                tokio::spawn(api::serve(bound, router, supervisor.clone())),
                counter,
                api_file,
            ))
        }
        _ => None,
    };
    tracing::info!(file = %loaded.path().display(), "nanny running: every worker is ready");
    let beside = upgrade::Beside::start(&mut inherited, &supervisor, upgrade);
    supervisor.closed().await;
    let handed_over = beside.finish().await;
    if let Some((task, counter, api_file)) = server {
        // Both end once the supervisor has closed.
        let _ = task.await;
        let _ = counter.await;
        // After an upgrade the file is the new nanny's.
        if let Some(path) = api_file.filter(|_| !handed_over) {
            let _ = std::fs::remove_file(path);
        }
    }
    let code = signals.await.unwrap_or_default().code();
    tracing::info!(code, "nanny stopped");
    code
}

/// Takes the signals, spawns the supervisor and waits until every worker is
/// ready; the supervisor and its signal task, or the exit code.
async fn start(
    loaded: &mut crate::config::Loaded,
    hub: &logs::Hub,
) -> Result<(nanny::Supervisor, tokio::task::JoinHandle<signals::Stops>), i32> {
    let handlers = signals::install().map_err(|e| {
        eprintln!("nanny: cannot take the signals: {e}");
        exit::UNAVAILABLE
    })?;
    let supervisor = match std::mem::take(&mut loaded.builder).on_output(hub.sink()).spawn() {
        Ok(s) => s,
        Err(StartError::Config(e)) => {
            eprintln!("nanny: {}", loaded.locate(&e));
            return Err(exit::CONFIG);
        }
        Err(e) => {
            eprintln!("nanny: {}: cannot start: {e}", loaded.path().display());
            return Err(e.exit_code());
        }
    };
    // Signals are taken from here on, while the workers get ready too.
    let signals = tokio::spawn(signals::handle(
        handlers,
        supervisor.clone(),
        reload::Running::of(loaded, hub.clone()),
    ));
    if let Err(e) = ready(&supervisor).await {
        eprintln!("nanny: {}: cannot start: {e}", loaded.path().display());
        let stops = signals.await.unwrap_or_default();
        return Err(match stops.code() {
            exit::CLEAN => e.exit_code(),
            forced => forced,
        });
    }
    Ok((supervisor, signals))
}

/// Waits until every worker is ready, as `Builder::start` does: a pool that
/// cannot get there is hard-killed and reported.
async fn ready(supervisor: &nanny::Supervisor) -> Result<(), StartError> {
    match supervisor.ready().await {
        Ok(()) => Ok(()),
        Err(nanny::Error::PoolFailed { pool } | nanny::Error::SlotParked { pool, .. }) => {
            supervisor.hard_kill().await;
            Err(StartError::PoolFailed { pool })
        }
        Err(_) => {
            // Stopped while starting (a stop signal): let the stop finish.
            supervisor.soft_kill().await;
            Err(StartError::Stopped)
        }
    }
}
