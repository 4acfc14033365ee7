//! The config file of `nanny run`: its [`schema`], its
//! [`units`], [`env_file`]s, and the translation into a
//! [`nanny::Builder`]. Every error names the file, and where it can, the
//! line and column (see [`FileError`]).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

mod build;
mod env_file;
mod limits;
mod logs;
mod schema;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_queue;
mod units;

#[cfg(test)]
pub(crate) use build::RUN_DRAIN_TIMEOUT;

/// A file that `nanny run` refuses: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileError {
    /// The file, as given.
    pub(crate) path: PathBuf,
    /// Line and column (from 1; the column counts characters) of the
    /// value or table at fault, when known.
    pub(crate) at: Option<(usize, usize)>,
    /// What is wrong, and what was expected.
    pub(crate) message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for FileError {}

/// A problem found while building, with the byte range it is about.
#[derive(Debug)]
pub(crate) struct Problem {
    span: Option<Range<usize>>,
    message: String,
}

impl Problem {
    fn at(span: Range<usize>, message: String) -> Self {
        Self {
            span: Some(span),
            message,
        }
    }

    fn whole(message: String) -> Self {
        Self { span: None, message }
    }
}

/// The REST API's settings, resolved (`[api]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiSettings {
    /// Whether to serve it at all.
    pub(crate) enabled: bool,
    /// Where.
    pub(crate) listen: std::net::SocketAddr,
    /// The configured token file, if any (absolute, or from the file's
    /// directory).
    pub(crate) token_file: Option<PathBuf>,
    /// Where the generated token and `api.json` go.
    pub(crate) state_dir: PathBuf,
}

/// The API's default address (project-cluster's port, loopback only).
pub(crate) const DEFAULT_API_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8887);

impl ApiSettings {
    fn resolve(api: &schema::ApiConfig, dir: &Path) -> Self {
        Self {
            enabled: api.enabled.unwrap_or(true),
            listen: api.listen.unwrap_or(DEFAULT_API_LISTEN),
            token_file: api.token_file.as_ref().map(|p| dir.join(p)),
            state_dir: dir.join(api.state_dir.as_deref().unwrap_or(Path::new(".nanny"))),
        }
    }
}

/// A loaded file: the builder it describes, and what is needed to place
/// the library's [`nanny::ConfigError`]s in it.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The supervisor the file describes (signals not yet taken).
    pub(crate) builder: nanny::Builder,
    /// The REST API's settings.
    pub(crate) api: ApiSettings,
    /// The file as TOML values, to compare with a later version of it.
    pub(crate) doc: toml::Table,
    /// Each pool's name and worker spec, in order.
    pub(crate) specs: Vec<(String, nanny::WorkerSpec)>,
    /// Each pool's name and definition, in order (what a reload applies).
    pub(crate) defs: Vec<(String, nanny::Pool)>,
    /// Where each pool's output goes.
    pub(crate) logs: Vec<crate::logs::PoolLog>,
    source: Source,
    /// Each pool's name and the byte range of its table.
    pools: Vec<(String, Range<usize>)>,
    /// Each listener's name (as the library names it) and its table's range.
    listeners: Vec<(String, Range<usize>)>,
    /// The range of the `[queue]` table, if any.
    queue: Option<Range<usize>>,
}

/// The file's path and text, to turn byte offsets into lines and columns.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> FileError {
        FileError {
            path: self.path.clone(),
            at: span.map(|s| line_col(&self.text, s.start)),
            message: message.into(),
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads, parses and checks the file at `path`.
pub(crate) fn load(path: &Path) -> Result<Loaded, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_owned(),
        at: None,
        message: format!("cannot read: {e}"),
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(
        Source {
            path: path.to_owned(),
            text,
        },
        dir,
    )
}

/// Parses `source`, whose relative paths are from `dir`.
fn parse(source: Source, dir: &Path) -> Result<Loaded, FileError> {
    let parse_error = |e: toml::de::Error| source.error(e.span(), e.message().trim_end());
    let file: schema::File = toml::from_str(&source.text).map_err(parse_error)?;
    let doc: toml::Table = toml::from_str(&source.text).map_err(parse_error)?;
    let pools = file
        .pool
        .iter()
        .map(|p| {
            (
                p.get_ref()
                    .name
                    .clone()
                    .unwrap_or_else(|| nanny::DEFAULT_POOL.to_owned()),
                p.span(),
            )
        })
        .collect();
    let listeners = file
        .listener
        .iter()
        .map(|l| (listener_name(l.get_ref(), dir), l.span()))
        .collect();
    let queue = file.queue.as_ref().map(toml::Spanned::span);
    let api = ApiSettings::resolve(&file.api, dir);
    let logs = logs::pools(&file, dir).map_err(|p| source.error(p.span, p.message))?;
    let (builder, specs, defs) = build::builder(file, dir).map_err(|p| source.error(p.span, p.message))?;
    Ok(Loaded {
        builder,
        api,
        doc,
        specs,
        defs,
        logs,
        source,
        pools,
        listeners,
        queue,
    })
}

/// The name the library gives a listener (`Listener::display_name`).
fn listener_name(l: &schema::ListenerConfig, dir: &Path) -> String {
    if let Some(name) = &l.name {
        return name.clone();
    }
    match (&l.tcp, &l.unix) {
        (Some(addr), _) => nanny::Listener::tcp(*addr).display_name(),
        (None, Some(path)) => nanny::Listener::unix(dir.join(path)).display_name(),
        (None, None) => String::new(),
    }
}

impl Loaded {
    /// `error`, placed at the table of the listener or pool it names.
    pub(crate) fn locate(&self, error: &nanny::ConfigError) -> FileError {
        let message = error.to_string();
        let at = |names: &[(String, Range<usize>)], name: Option<&str>| {
            let name = name?;
            names
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, span)| span.clone())
        };
        let span = at(&self.listeners, error.listener()).or_else(|| at(&self.pools, error.pool()));
        let span = span.or_else(|| {
            matches!(error, nanny::ConfigError::SharedQueue(_))
                .then(|| self.queue.clone())
                .flatten()
        });
        self.source.error(span, message)
    }
}

impl Loaded {
    /// The file it was loaded from.
    pub(crate) fn path(&self) -> &Path {
        &self.source.path
    }
}
