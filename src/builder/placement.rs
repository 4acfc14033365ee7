//! Validation of process titles and CPU affinity.

use crate::error::ConfigError;

use super::Config;

/// The longest [`Builder::process_title`](super::Builder::process_title)
/// base accepted, in bytes.
pub(crate) const MAX_PROCESS_TITLE: usize = 64;

impl Config {
    /// The first process title or CPU set that is out of range, if any.
    pub(super) fn validate_placement(&self) -> Result<(), ConfigError> {
        if let Some(title) = &self.process_title {
            check_title(title)?;
        }
        let mut available = None;
        for p in self.pools.iter().filter(|p| p.cpus.is_set()) {
            let pool = || p.name.clone();
            if p.cpus.shared.is_some() && p.cpus.per_worker.is_some() {
                return Err(ConfigError::CpuAffinityConflict { pool: pool() });
            }
            if p.cpus.all().next().is_none() {
                return Err(ConfigError::EmptyCpuAffinity { pool: pool() });
            }
            if available.is_none() {
                let cpus = crate::worker::placement::allowed_cpus().map_err(|e| {
                    ConfigError::CpuAffinityUnsupported {
                        pool: pool(),
                        reason: format!("sched_getaffinity: {e}"),
                    }
                })?;
                available = Some(cpus);
            }
            let available = available.as_deref().unwrap_or_default();
            if let Some(cpu) = p.cpus.all().find(|c| !available.contains(c)) {
                return Err(ConfigError::CpuAffinity {
                    pool: pool(),
                    cpu,
                    available: available.to_vec(),
                });
            }
        }
        Ok(())
    }
}

fn check_title(title: &str) -> Result<(), ConfigError> {
    let reason = if title.is_empty() {
        "must not be empty"
    } else if title.len() > MAX_PROCESS_TITLE {
        "must be at most 64 bytes"
    } else if title.contains(['\0', '\n', '\r']) {
        "must not hold a NUL or a line break"
    } else {
        return Ok(());
    };
    Err(ConfigError::ProcessTitle {
        title: title.to_owned(),
        reason,
    })
}
