//! The state directory (`[api] state_dir`, by default `.nanny/` beside the
//! config file) and `api.json` in it: where the API listens, where its
//! token lies, and which nanny wrote it. The CLI reads it to find the API,
//! as project-cluster's CLI reads `.cluster.json`. Both files are written
//! 0600 in a 0700 directory; `api.json` is removed when nanny stops.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the discovery file in the state directory.
pub(crate) const API_FILE: &str = "api.json";

/// What `api.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Discovery {
    /// `http://ADDR`, the address actually bound.
    pub(crate) url: String,
    /// The token's file; `None` when the token came from the environment.
    pub(crate) token_file: Option<PathBuf>,
    /// The `nanny run` process.
    pub(crate) pid: u32,
    /// Its config file, absolute.
    pub(crate) config: PathBuf,
}

impl Discovery {
    /// The discovery of an API bound at `addr`.
    pub(crate) fn new(addr: SocketAddr, token_file: Option<PathBuf>, config: PathBuf) -> Self {
        Self {
            url: format!("http://{addr}"),
            token_file,
            pid: std::process::id(),
            config,
        }
    }
}

/// Creates `dir` (and its parents) 0700 if missing.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path`, readable and writable by its owner only: into a
/// fresh 0600 file beside it, then renamed over it, so a reader never sees
/// it half-written nor with wider permissions.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes `api.json` into `state_dir`; returns its path.
pub(crate) fn write(state_dir: &Path, discovery: &Discovery) -> std::io::Result<PathBuf> {
    let path = state_dir.join(API_FILE);
    let text = serde_json::to_vec_pretty(discovery).map_err(std::io::Error::other)?;
    write_private(&path, &text)?;
    Ok(path)
}

/// Reads the `api.json` at `path`.
pub(crate) fn read(path: &Path) -> std::io::Result<Discovery> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_written_0600_in_a_0700_directory_and_read_back() {
        let dir = std::env::temp_dir().join(format!("nanny-discovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join(".nanny");
        let d = Discovery::new("127.0.0.1:8887".parse().unwrap(), None, "/srv/nanny.toml".into());
        let path = write(&state, &d).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(read(&path).unwrap(), d);
        assert_eq!(d.url, "http://127.0.0.1:8887");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
