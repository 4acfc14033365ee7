//! Worker output under `nanny run` (README.md, "The `nanny` command"):
//! every pool is captured by the library (`silent(true)`), and the file's
//! `silent` key decides where each line goes.
//!
//! - `silent = true`: the pool's log file `<log_dir>/<pool>.log`, rotated
//!   by size with a cap on the pool's total ([`files`]), written by one
//!   thread fed through a bounded queue ([`writer`]: lines it cannot take
//!   are dropped and counted, never waited for).
//! - `silent = false`: nanny's own log on stderr, one event per line with
//!   target `nanny::worker`, prefixed `web:01| ` in text, or with `pool`,
//!   `worker` and `stream` fields in `--log-format json`.
//! - both: the live [`Hub`]: the last [`RECENT`] lines of each pool, and a
//!   broadcast of [`LIVE`] lines for followers (`GET /v1/logs`, [`route`]).
//!
//! Lines are decoded with the pool's `encoding` ([`decode`]).
//!
//! What each part owns: this module the [`Hub`] and the library's sink;
//! [`decode`] the encodings; [`files`] a pool's rotating files; [`writer`]
//! the thread that writes them; [`route`] the API's `GET /v1/logs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use nanny::output::{OutputLine, OutputStream, Severity};
use nanny::WorkerId;
use tokio::sync::broadcast;

pub(crate) mod decode;
pub(crate) mod files;
pub(crate) mod route;
mod stamp;
pub(crate) mod writer;

pub(crate) use decode::Decoder;

/// Recent lines kept per pool for `GET /v1/logs` (each at most
/// `nanny::output::MAX_LINE` bytes).
pub(crate) const RECENT: usize = 1000;

/// Lines the live broadcast holds for a slow follower; one further behind
/// is told how many it missed (`{"lagged": N}`).
pub(crate) const LIVE: usize = 1024;

/// Where one pool's lines go, from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolLog {
    /// The pool.
    pub(crate) pool: String,
    /// Its file and limits (`silent = true`), or `None`: nanny's stderr.
    pub(crate) file: Option<files::Limits>,
    /// Its `encoding`.
    pub(crate) decoder: Decoder,
}

/// One captured line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    /// When the supervisor read it.
    pub(crate) time: SystemTime,
    /// The worker's pool.
    pub(crate) pool: Arc<str>,
    /// The worker's id.
    pub(crate) id: WorkerId,
    /// The worker's name (`pool:NN`).
    pub(crate) worker: String,
    /// `stdout` or `stderr`.
    pub(crate) stream: OutputStream,
    /// The text, without its newline.
    pub(crate) line: String,
}

impl LogLine {
    /// The line as the pool's file has it: `TIME NAME STREAM: TEXT\n`.
    pub(crate) fn write_to(&self, buf: &mut Vec<u8>) {
        use std::io::Write;
        let _ = writeln!(
            buf,
            "{} {} {}: {}",
            stamp::rfc3339(self.time),
            self.worker,
            self.stream,
            self.line
        );
    }

    /// The line as `GET /v1/logs` sends it.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "time": stamp::rfc3339(self.time),
            "pool": &*self.pool,
            "worker": self.worker,
            "stream": self.stream.as_str(),
            "line": self.line,
        })
    }
}

/// The route of one pool's lines.
#[derive(Debug, Clone)]
struct Route {
    /// The pool's name, shared by its lines (`None`: the fallback's, for
    /// any pool).
    pool: Option<Arc<str>>,
    decoder: Decoder,
    /// Its place in the writer (the pool's index in the file), if it logs
    /// to a file now.
    file: Option<usize>,
}

/// The live log: where lines are routed, the recent ones per pool, and the
/// broadcast to followers. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Each pool's route, and its place in the writer; a reload changes
    /// routes under the write lock ([`Hub::reroute`]), lines are routed
    /// and queued under the read lock.
    routes: RwLock<HashMap<String, Route>>,
    /// Each pool's place in the writer.
    places: HashMap<String, usize>,
    /// For pools the file did not name (none today): UTF-8, stderr.
    fallback: Route,
    json: bool,
    /// The recent lines per pool; the broadcast is sent under this lock
    /// too, so that a follower's snapshot and subscription meet exactly.
    recent: Mutex<HashMap<Arc<str>, VecDeque<Arc<LogLine>>>>,
    live: broadcast::Sender<Arc<LogLine>>,
    writer: writer::Writer,
}

/// Opens `pool`'s log file, with the error naming its place.
pub(super) fn open_file(pool: &str, limits: &files::Limits) -> Result<files::RotatingFile, String> {
    files::RotatingFile::open(pool, limits).map_err(|e| {
        format!(
            "cannot open the log file of pool {pool:?} in {}: {e}",
            limits.dir.display()
        )
    })
}

impl Hub {
    /// Opens the pools' log files and starts their writer. `json`: nanny's
    /// stderr log is JSON (`--log-format json`).
    pub(crate) fn start(pools: &[PoolLog], json: bool) -> Result<Self, String> {
        let mut routes = HashMap::new();
        let mut places = HashMap::new();
        let mut open = Vec::new();
        for (i, p) in pools.iter().enumerate() {
            let file = p
                .file
                .as_ref()
                .map(|limits| open_file(&p.pool, limits))
                .transpose()?;
            let route = Route {
                pool: Some(p.pool.as_str().into()),
                decoder: p.decoder,
                file: file.is_some().then_some(i),
            };
            open.push((p.pool.clone(), file));
            routes.insert(p.pool.clone(), route);
            places.insert(p.pool.clone(), i);
        }
        let writer = writer::Writer::start(open).map_err(|e| format!("cannot start the log writer: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                routes: RwLock::new(routes),
                places,
                fallback: Route {
                    pool: None,
                    decoder: Decoder::default(),
                    file: None,
                },
                json,
                recent: Mutex::default(),
                live: broadcast::channel(LIVE).0,
                writer,
            }),
        })
    }

    /// Sends `p.pool`'s lines where `p` says from now on (a reload): the
    /// lines queued for the old file are written there, then the new file
    /// is opened. Nothing changes if it cannot be. Blocking (see
    /// [`writer::Writer::swap`]): call it off the runtime.
    ///
    /// # Errors
    ///
    /// The pool was not in the file at start, or its new file cannot be
    /// opened.
    pub(crate) fn reroute(&self, p: &PoolLog) -> Result<(), String> {
        let inner = &*self.inner;
        let Some(&place) = inner.places.get(&p.pool) else {
            return Err(format!("pool {:?} was not in the file at start", p.pool));
        };
        let route = Route {
            pool: Some(p.pool.as_str().into()),
            decoder: p.decoder,
            file: p.file.is_some().then_some(place),
        };
        if p.file.is_some() {
            // The file first, then the lines: none finds the place empty.
            inner.writer.swap(place, p.file.clone())?;
            self.set_route(&p.pool, route);
        } else {
            // The lines first: none is queued after the file closes.
            self.set_route(&p.pool, route);
            inner.writer.swap(place, None)?;
        }
        Ok(())
    }

    fn set_route(&self, pool: &str, route: Route) {
        let mut routes = self.inner.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.insert(pool.to_owned(), route);
    }

    /// The library's sink (`Builder::on_output`). Never blocks: a short
    /// lock on the recent lines, a broadcast, a `try_send` to the writer.
    pub(crate) fn sink(&self) -> impl Fn(&OutputLine<'_>) + Send + Sync + 'static {
        let hub = self.clone();
        move |l| hub.take(l)
    }

    fn take(&self, l: &OutputLine<'_>) {
        let inner = &*self.inner;
        let routes = inner.routes.read().unwrap_or_else(|e| e.into_inner());
        let route = routes.get(l.pool).unwrap_or(&inner.fallback);
        let pool = route.pool.clone().unwrap_or_else(|| l.pool.into());
        let line = Arc::new(LogLine {
            time: SystemTime::now(),
            pool,
            id: l.worker,
            worker: l.name.to_owned(),
            stream: l.stream,
            line: route.decoder.decode(l.bytes).into_owned(),
        });
        match route.file {
            Some(i) => inner.writer.send(i, Arc::clone(&line)),
            None => self.to_stderr(&line, l.severity),
        }
        drop(routes);
        let mut recent = inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        let ring = recent.entry(Arc::clone(&line.pool)).or_default();
        if ring.len() == RECENT {
            ring.pop_front();
        }
        ring.push_back(Arc::clone(&line));
        let _ = inner.live.send(line); // no follower: fine
    }

    fn to_stderr(&self, l: &LogLine, severity: Severity) {
        let (pool, worker, stream, text) = (&*l.pool, l.worker.as_str(), l.stream.as_str(), l.line.as_str());
        macro_rules! emit {
            ($level:ident) => {
                match self.inner.json {
                    true => tracing::$level!(target: "nanny::worker", pool, worker, stream, "{text}"),
                    false => tracing::$level!(target: "nanny::worker", "{worker}| {text}"),
                }
            };
        }
        match severity {
            Severity::Error => emit!(error),
            Severity::Warning => emit!(warn),
            _ => emit!(info),
        }
    }

    /// The last `n` lines that `keep` selects (oldest first), and, taken
    /// at the same instant, a subscription to the lines after them.
    pub(crate) fn recent(
        &self,
        keep: &dyn Fn(&LogLine) -> bool,
        n: usize,
    ) -> (Vec<Arc<LogLine>>, broadcast::Receiver<Arc<LogLine>>) {
        let recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: Vec<Arc<LogLine>> = recent.values().flatten().filter(|l| keep(l)).cloned().collect();
        lines.sort_by_key(|l| l.time);
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
        (lines, self.inner.live.subscribe())
    }

    /// Lets the writer write what is queued and end. Blocking: at the end
    /// of `nanny run`, once the supervisor has closed.
    pub(crate) fn finish(&self) {
        self.inner.writer.finish();
    }
}
