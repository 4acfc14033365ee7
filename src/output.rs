//! The captured output of [`silent`](crate::Pool::silent) pools, as a sink
//! set with [`Builder::on_output`](crate::Builder::on_output) sees it.
//!
//! A silent pool's workers have their stdout and stderr piped to the
//! supervisor, which reads them line by line (a line is cut at
//! [`MAX_LINE`] bytes; the rest of it is skipped). Each line is classified
//! ([`Severity`]) and counted in [`WorkerHealth::errors`](crate::WorkerHealth::errors)
//! and [`warnings`](crate::WorkerHealth::warnings). Then:
//!
//! - without a sink, it becomes a `tracing` event of target `nanny::worker`
//!   (fields `worker`, `pool`, `stream`; level `error`, `warn` or `info` by
//!   its severity), decoded as UTF-8, lossily;
//! - with a sink, the sink gets it as an [`OutputLine`] of raw bytes, and
//!   no event is emitted: the sink decides where the line goes and how its
//!   bytes are decoded.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nanny::{Pool, Supervisor, WorkerSpec};
//!
//! let supervisor = Supervisor::builder()
//!     .pool(Pool::default_pool(WorkerSpec::new("./my-worker")).silent(true))
//!     .on_output(|line| {
//!         let text = String::from_utf8_lossy(line.bytes);
//!         println!("[{} {}] {text}", line.name, line.stream);
//!     })
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use crate::WorkerId;

/// The longest line kept, in bytes; the rest of a longer line is skipped.
pub const MAX_LINE: usize = 16 * 1024;

/// One line a worker of a silent pool wrote.
///
/// It borrows the capture task's buffer: a sink that keeps the line copies
/// what it needs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OutputLine<'a> {
    /// The worker's pool.
    pub pool: &'a str,
    /// The worker.
    pub worker: WorkerId,
    /// The worker's stable name, `pool:NN` (its slot's, as
    /// [`WorkerHealth::name`](crate::WorkerHealth::name)).
    pub name: &'a str,
    /// The stream it came on.
    pub stream: OutputStream,
    /// The line's bytes as written, without its `\n` (nor a `\r` before
    /// it); at most [`MAX_LINE`] bytes. Not decoded: a multi-byte character
    /// may be cut at the end of a long line.
    pub bytes: &'a [u8],
    /// How it reads (the words in it, see [`Severity`]).
    pub severity: Severity,
}

/// Which of a worker's streams a line came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a line reads, by the words in it (case-insensitively): `error`,
/// `panic`, `fatal` and `exception` make an [`Error`](Self::Error), `warn`
/// a [`Warning`](Self::Warning) (project-cluster's error and warning
/// monitoring). Error and warning lines are counted per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// It looks like an error.
    Error,
    /// It looks like a warning.
    Warning,
    /// Anything else.
    Plain,
}

/// A sink of captured lines: [`Builder::on_output`](crate::Builder::on_output).
#[derive(Clone)]
pub(crate) struct Sink(pub(crate) Arc<dyn Fn(&OutputLine<'_>) + Send + Sync>);

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sink(..)")
    }
}
