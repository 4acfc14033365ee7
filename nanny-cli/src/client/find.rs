//! Finding the API of a running `nanny run` (README.md, "The `nanny`
//! command"): its URL and token from the flags, the environment, or the
//! `api.json` that nanny writes in its state directory, as project-cluster's
//! CLI reads `.cluster.json`.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::api::discovery::{self, API_FILE};

/// The environment variable naming the API's URL.
pub(crate) const URL_ENV: &str = "NANNY_API_URL";
/// The environment variable holding the token itself.
pub(crate) const TOKEN_ENV: &str = crate::api::auth::TOKEN_ENV;

/// The flags that say where the API is (`nanny --api URL ...`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Where {
    /// The API's URL (default: `NANNY_API_URL`, else from `api.json`).
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) api: Option<String>,
    /// A file holding the token (default: `NANNY_API_TOKEN`, else the
    /// `token_file` in `api.json`).
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// The state directory holding `api.json` (default: `.nanny/` in the
    /// current directory or its nearest parent that has one).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) state_dir: Option<PathBuf>,
    /// The config file nanny runs: its `[api] state_dir` holds `api.json`.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Give up on an answer after SECS seconds (exit 75). Default: 60 for
    /// a read (`status`), no bound for an operation (a reload of many
    /// draining workers can take minutes); a stream (`logs`) is bounded
    /// until it begins only.
    #[arg(long, value_name = "SECS", global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: Option<u64>,
}

/// Where the API is and the token to show it. Its `Debug` hides the token.
pub(crate) struct Target {
    /// `http://HOST:PORT`, without a trailing slash.
    pub(crate) url: String,
    /// The bearer token.
    pub(crate) token: String,
    /// The `api.json` it was found in, if it was.
    pub(crate) found: Option<Found>,
}

/// The `api.json` a [`Target`] came from: who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The file.
    pub(crate) file: PathBuf,
    /// The `nanny run` that wrote it.
    pub(crate) pid: u32,
    /// Its config file.
    pub(crate) config: PathBuf,
}

impl Found {
    /// Why nothing answers when the nanny that wrote the file is gone (it
    /// was killed, so it could not remove the file); `None` while it runs.
    pub(crate) fn stale(&self) -> Option<String> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).ok()?);
        // EPERM: a process of another user holds the pid: not ours to judge.
        if nix::sys::signal::kill(pid, None) != Err(nix::errno::Errno::ESRCH) {
            return None;
        }
        Some(format!(
            "nanny (pid {}), which wrote {}, is not running (killed?); start it again with `nanny run {}`",
            self.pid,
            self.file.display(),
            self.config.display()
        ))
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Resolves the URL and the token: flags first, then the environment, then
/// `api.json` (read only when one of the two is still missing).
pub(crate) fn target(w: &Where) -> Result<Target, CliError> {
    let url = w.api.clone().or_else(|| env(URL_ENV));
    let token = match &w.token_file {
        Some(path) => Some(read_token(path)?),
        None => env(TOKEN_ENV),
    };
    if let (Some(url), Some(token)) = (&url, &token) {
        return Ok(Target {
            url: url.trim_end_matches('/').to_owned(),
            token: token.clone(),
            found: None,
        });
    }
    let file = api_file(w).map_err(|e| match &url {
        // A URL without its token: say what is missing, not how to start nanny.
        Some(url) if w.state_dir.is_none() && w.config.is_none() => CliError::Unreachable(format!(
            "no token for the API at {url}: pass --token-file PATH or set {TOKEN_ENV} \
             (there is no .nanny/{API_FILE} here to take it from)"
        )),
        _ => e,
    })?;
    let found = discovery::read(&file)
        .map_err(|e| CliError::Unreachable(format!("cannot read {}: {e}", file.display())))?;
    let token = match token {
        Some(t) => t,
        None => match &found.token_file {
            Some(path) => read_token(path)?,
            None => {
                return Err(CliError::Unreachable(format!(
                    "nanny (pid {}) took its token from {TOKEN_ENV}; set it here too, or pass --token-file",
                    found.pid
                )))
            }
        },
    };
    let from = Found {
        file,
        pid: found.pid,
        config: found.config,
    };
    let url = url.unwrap_or(found.url);
    Ok(Target {
        url: url.trim_end_matches('/').to_owned(),
        token,
        found: Some(from),
    })
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_owned())
}

/// The token in `path`, without surrounding whitespace.
fn read_token(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Unreachable(format!("cannot read the token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::Unreachable(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

/// The `api.json` to read: `--state-dir`, the `-c` file's state directory,
/// or the nearest `.nanny/api.json` from the current directory up.
fn api_file(w: &Where) -> Result<PathBuf, CliError> {
    if let Some(dir) = &w.state_dir {
        return Ok(dir.join(API_FILE));
    }
    if let Some(config) = &w.config {
        let loaded = crate::config::load(config).map_err(|e| {
            CliError::Unreachable(format!("cannot find the API from {}: {e}", config.display()))
        })?;
        return Ok(loaded.api.state_dir.join(API_FILE));
    }
    let cwd =
        std::env::current_dir().map_err(|e| CliError::Unreachable(format!("no current directory: {e}")))?;
    nearest(&cwd).ok_or_else(|| {
        CliError::Unreachable(format!(
            "no running nanny found: no .nanny/{API_FILE} in {} or its parents. \
             Start one with `nanny run nanny.toml` (it writes .nanny/{API_FILE} beside the file), \
             or say where it is with -c FILE, --state-dir DIR or --api URL",
            cwd.display()
        ))
    })
}

/// The nearest `.nanny/api.json` in `dir` or its parents.
fn nearest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(".nanny").join(API_FILE))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_api_json_is_found_from_a_subdirectory() {
        let root = std::env::temp_dir().join(format!("nanny-find-{}", std::process::id()));
        let deep = root.join("a").join("b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(nearest(&deep), None);
        std::fs::create_dir_all(root.join(".nanny")).unwrap();
        std::fs::write(root.join(".nanny").join(API_FILE), "{}").unwrap();
        assert_eq!(nearest(&deep), Some(root.join(".nanny").join(API_FILE)));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_is_stale_once_its_writer_is_gone() {
        let mut found = Found {
            file: "/srv/.nanny/api.json".into(),
            pid: std::process::id(),
            config: "/srv/nanny.toml".into(),
        };
        assert_eq!(found.stale(), None, "this process runs");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        found.pid = child.id();
        child.wait().unwrap();
        let stale = found.stale().expect("a reaped process is gone");
        assert!(stale.contains("nanny run /srv/nanny.toml"), "{stale}");
    }

    #[test]
    fn the_target_never_shows_its_token() {
        let t = Target {
            url: "http://127.0.0.1:1".into(),
            token: "s3cret".into(),
            found: None,
        };
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
