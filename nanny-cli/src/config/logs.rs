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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{parse, FileError, Loaded, Source};
    use super::*;
    use crate::logs::Decoder;

    fn load(text: &str) -> Result<Loaded, FileError> {
        let source = Source {
            path: PathBuf::from("nanny.toml"),
            text: text.to_owned(),
        };
        parse(source, Path::new("/srv/app"))
    }

    #[test]
    fn silent_pools_log_to_files_with_the_defaults_or_their_own_keys() {
        let loaded = load(
            r#"
[supervisor]
log_dir = "/var/log/app"
log_max_size = "1MiB"

[[pool]]
name = "web"
command = "sleep"
silent = true

[[pool]]
name = "jobs"
command = "sleep"
silent = true
encoding = "shift_jis"
log_dir = "jobs-logs"
log_max_total = "5MiB"

[[pool]]
name = "loud"
command = "sleep"
"#,
        )
        .unwrap();
        let limits = |dir: &str, max_size, max_total| {
            Some(Limits {
                dir: PathBuf::from(dir),
                max_size,
                max_total,
            })
        };
        let want = [
            (
                "web",
                limits("/var/log/app", 1 << 20, DEFAULT_LOG_MAX_TOTAL),
                Decoder::default(),
            ),
            (
                "jobs",
                limits("/srv/app/jobs-logs", 1 << 20, 5 << 20),
                Decoder::for_label("sjis").unwrap(),
            ),
            ("loud", None, Decoder::default()),
        ];
        assert_eq!(loaded.logs.len(), 3);
        for (got, (pool, file, decoder)) in loaded.logs.iter().zip(want) {
            assert_eq!(
                (got.pool.as_str(), &got.file, got.decoder),
                (pool, &file, decoder)
            );
        }
        let plain = load("[[pool]]\ncommand = \"sleep\"\nsilent = true\n").unwrap();
        let file = plain.logs[0].file.clone().unwrap();
        assert_eq!(file.dir, Path::new("/srv/app/logs"));
        assert_eq!(
            (file.max_size, file.max_total),
            (DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_TOTAL)
        );
    }

    #[test]
    fn a_bad_encoding_is_refused_at_its_value() {
        let e = load("[[pool]]\ncommand = \"sleep\"\nencoding = \"klingon\"\n").unwrap_err();
        assert_eq!(e.at, Some((3, 12)), "{e}");
        assert!(e.message.contains("unknown encoding \"klingon\""), "{e}");
        let e = load("[[pool]]\ncommand = \"sleep\"\nencoding = \"utf-16le\"\n").unwrap_err();
        assert_eq!(e.at, Some((3, 12)), "{e}");
        assert!(e.message.contains("not supported"), "{e}");
    }

    #[test]
    fn log_limits_that_cannot_hold_a_file_are_refused_at_their_pool() {
        let e = load(
            "[supervisor]\nlog_max_total = \"1MiB\"\n\n[[pool]]\nname = \"p\"\ncommand = \"sleep\"\nsilent = true\nlog_max_size = \"2MiB\"\n",
        )
        .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(4), "{e}"); // the pool's table
        assert!(
            e.message
                .contains("log_max_total (1048576 bytes) must be at least log_max_size (2097152 bytes)"),
            "{e}"
        );
        let e = load("[[pool]]\ncommand = \"sleep\"\nsilent = true\nlog_max_size = 0\n").unwrap_err();
        assert!(e.message.contains("log_max_size must be more than 0"), "{e}");
        let e = load("[[pool]]\nname = \"../x\"\ncommand = \"sleep\"\nsilent = true\n").unwrap_err();
        assert!(e.message.contains("no `/`"), "{e}");
    }
}
