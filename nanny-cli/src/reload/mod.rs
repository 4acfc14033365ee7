//! SIGHUP under `nanny run`: re-read the file, validate it completely (the
//! file's own checks and the library's, [`nanny::Builder::validate`]), then
//! change what can change live ([`diff`]): a pool whose definition changed
//! (its spec, its settings, its options) gets the new one
//! ([`Supervisor::update_pool_config`]) and a rolling reload; a pool whose
//! `workers` changed is resized; a pool whose log settings changed sends
//! its lines to the new place from then on ([`crate::logs::Hub::reroute`]);
//! the rest of the running pools are left alone. What cannot change live (what the plan or the library refuses:
//! [`nanny::ConfigError::NotLive`]) is logged as a warning naming its key,
//! and the rest is still applied. A file that is refused changes nothing.
//!
//! [`apply`] is the whole reload; [`serve`] runs it on each SIGHUP, between
//! a service manager's `RELOADING=1` and `READY=1` (systemd's
//! `Type=notify-reload`), the latter sent after a refused file too, since
//! the running configuration then serves on.

use std::fmt;
use std::path::{Path, PathBuf};

use nanny::{ConfigError, Error, Supervisor};
use tokio::sync::mpsc;

use crate::config::{self, FileError, Loaded};
use crate::logs::{Hub, PoolLog};

mod diff;

pub(crate) use diff::Snapshot;

/// The configuration in force, and the file it comes from.
#[derive(Debug)]
pub(crate) struct Running {
    path: PathBuf,
    now: Snapshot,
    /// Where each pool's lines go now, and the hub that sends them there.
    logs: Vec<PoolLog>,
    hub: Hub,
}

impl Running {
    /// What `loaded` started, its lines going through `hub`.
    pub(crate) fn of(loaded: &Loaded, hub: Hub) -> Self {
        Self {
            path: loaded.path().to_owned(),
            now: snapshot(loaded),
            logs: loaded.logs.clone(),
            hub,
        }
    }

    /// Sends each running pool's lines where `next` says, if that changed
    /// (`silent`, `encoding`, the log files' place and limits), noting it in
    /// `summary`; a pool whose new file cannot be opened keeps the old.
    async fn reroute_logs(&mut self, next: &[PoolLog], summary: &mut Summary) {
        for new in next {
            let Some(old) = self.logs.iter_mut().find(|l| l.pool == new.pool) else {
                continue; // an added pool: needs a restart
            };
            if old == new {
                continue;
            }
            let (hub, log) = (self.hub.clone(), new.clone());
            let done = tokio::task::spawn_blocking(move || hub.reroute(&log))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let pool = new.pool.clone();
            match done {
                Ok(()) => {
                    tracing::info!(pool, "new log settings");
                    *old = new.clone();
                    summary.unchanged.retain(|p| *p != pool);
                    if !summary.changed.contains(&pool) {
                        summary.changed.push(pool);
                    }
                }
                Err(e) => summary.failed.push((pool, e)),
            }
        }
    }
}

fn snapshot(loaded: &Loaded) -> Snapshot {
    Snapshot {
        doc: loaded.doc.clone(),
        specs: loaded.specs.clone(),
        defs: loaded.defs.clone(),
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The file's name, for the log line.
    pub(crate) file: String,
    /// The pools rolled to a new definition or resized.
    pub(crate) changed: Vec<String>,
    /// The pools left as they were.
    pub(crate) unchanged: Vec<String>,
    /// What changed in the file that needs a restart of nanny (not applied).
    pub(crate) needs_restart: Vec<String>,
    /// Pools whose change failed, and why (the old workers serve on).
    pub(crate) failed: Vec<(String, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| v.join(", ");
        write!(f, "reloaded {}: ", self.file)?;
        let mut parts = Vec::new();
        if !self.changed.is_empty() {
            parts.push(format!("pools {} changed", list(&self.changed)));
        }
        if !self.unchanged.is_empty() {
            parts.push(format!("{} unchanged", list(&self.unchanged)));
        }
        for (pool, error) in &self.failed {
            parts.push(format!("pool {pool} failed: {error}"));
        }
        if !self.needs_restart.is_empty() {
            parts.push(format!(
                "not applied, needs a restart of nanny: {}",
                list(&self.needs_restart)
            ));
        }
        if parts.is_empty() {
            parts.push("nothing to change".to_owned());
        }
        f.write_str(&parts.join("; "))
    }
}

/// Re-reads `running`'s file and applies it to `supervisor` (see the
/// module docs); `running` then holds what is in force.
///
/// # Errors
///
/// The file's error (with its place) if it is refused; nothing changed.
pub(crate) async fn apply(supervisor: &Supervisor, running: &mut Running) -> Result<Summary, FileError> {
    let loaded = config::load(&running.path)?;
    loaded.builder.validate().map_err(|e| loaded.locate(&e))?;
    let next = snapshot(&loaded);
    let plan = diff::plan(&running.now, &next);
    let mut summary = Summary {
        file: file_name(&running.path),
        unchanged: plan.unchanged,
        ..Summary::default()
    };
    summary.needs_restart = plan.restart;
    for change in plan.changes {
        let pool = change.pool.as_str();
        let (mut configured, mut result) = (false, Ok(()));
        if let (true, Some(def)) = (change.config, next.def(pool)) {
            result = match supervisor.update_pool_config(def.clone()).await {
                Err(Error::Config(ConfigError::NotLive { key, .. })) => {
                    summary
                        .needs_restart
                        .push(format!("pool {pool:?}: {key} changed"));
                    Ok(())
                }
                Err(e) => Err(e),
                Ok(()) => {
                    configured = true;
                    tracing::info!(pool, "new definition: rolling the pool");
                    supervisor.reload(Some(pool)).await
                }
            };
        }
        let mut resized = false;
        if let (Ok(()), Some(n)) = (&result, change.workers) {
            tracing::info!(pool, workers = n, "resizing the pool");
            result = supervisor.resize(pool, n).await;
            resized = result.is_ok();
        }
        // A definition that was set is in force for every worker started
        // from now on, even if the reload stopped early.
        running.now.adopt(pool, &next, configured, resized);
        match result {
            Ok(()) if configured || resized => summary.changed.push(change.pool),
            Ok(()) => {}
            Err(e) => summary.failed.push((change.pool, e.to_string())),
        }
    }
    running.reroute_logs(&loaded.logs, &mut summary).await;
    for key in &summary.needs_restart {
        tracing::warn!(
            "{}: {key}: needs a restart of nanny (SIGUSR2 upgrades in place, dropping no connection)",
            running.path.display()
        );
    }
    Ok(summary)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs [`apply`] once per request on `requests` until it closes or the
/// supervisor does, logging the summary or the refusal.
pub(crate) async fn serve(supervisor: Supervisor, mut running: Running, mut requests: mpsc::Receiver<()>) {
    loop {
        tokio::select! {
            got = requests.recv() => if got.is_none() { return },
            () = supervisor.closed() => return,
        }
        tracing::info!(file = %running.path.display(), "SIGHUP: reloading the file");
        crate::systemd::notify_reloading();
        let done = apply(&supervisor, &mut running).await;
        // Whatever the outcome, a configuration is in force and serving.
        crate::systemd::notify("READY=1");
        match done {
            Ok(summary) if summary.failed.is_empty() => tracing::info!("{summary}"),
            Ok(summary) => tracing::error!("{summary}"),
            Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
        }
    }
}
