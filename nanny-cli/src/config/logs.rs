//! The file's log keys, resolved per pool (see `crate::logs`): a `silent`
//! pool's `log_dir` / `log_max_size` / `log_max_total` (its own, else
//! `[supervisor]`'s, else the defaults), and its `encoding`.

use std::path::Path;

use super::schema::{File, LogKeys};
use super::Problem;
use crate::logs::files::Limits;
use crate::logs::PoolLog;

/// Default `log_dir`, beside the config file.
pub(crate) const DEFAULT_LOG_DIR: &str = "logs";
/// Default `log_max_size`: 10 MiB.
pub(crate) const DEFAULT_LOG_MAX_SIZE: u64 = 10 << 20;
/// Default `log_max_total`: 100 MiB.
pub(crate) const DEFAULT_LOG_MAX_TOTAL: u64 = 100 << 20;

/// Where each pool's lines go; `dir` is the file's directory.
pub(crate) fn pools(file: &File, dir: &Path) -> Result<Vec<PoolLog>, Problem> {
    let defaults = file.supervisor.log_keys();
    file.pool
        .iter()
        .map(|spanned| {
            let p = spanned.get_ref();
            let pool = p.name.clone().unwrap_or_else(|| nanny::DEFAULT_POOL.to_owned());
            let file = match p.silent {
                true => Some(limits(&p.log_keys(), &defaults, dir).map_err(|m| {
                    Problem::at(spanned.span(), format!("pool {pool:?}: {m}"))
                })?),
                false => None,
            };
            if p.silent && (pool.contains('/') || pool.starts_with('.')) {
                return Err(Problem::at(
                    spanned.span(),
                    format!("pool {pool:?}: a silent pool's name is its log file's (<pool>.log): no `/`, no leading `.`"),
                ));
            }
            Ok(PoolLog {
                pool,
                file,
                decoder: p.encoding.unwrap_or_default(),
            })
        })
        .collect()
}

fn limits(own: &LogKeys, defaults: &LogKeys, dir: &Path) -> Result<Limits, String> {
    let log_dir = own.log_dir.as_ref().or(defaults.log_dir.as_ref());
    let max_size = own
        .log_max_size
        .or(defaults.log_max_size)
        .map_or(DEFAULT_LOG_MAX_SIZE, |b| b.0);
    let max_total = own
        .log_max_total
        .or(defaults.log_max_total)
        .map_or(DEFAULT_LOG_MAX_TOTAL, |b| b.0);
    if max_size == 0 {
        return Err("log_max_size must be more than 0 bytes".to_owned());
    }
    if max_total < max_size {
        return Err(format!(
            "log_max_total ({max_total} bytes) must be at least log_max_size ({max_size} bytes)"
        ));
    }
    Ok(Limits {
        dir: dir.join(log_dir.map_or(Path::new(DEFAULT_LOG_DIR), |d| d.as_path())),
        max_size,
        max_total,
    })
}
