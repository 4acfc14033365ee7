//! Output capture for `silent` pools: each line a worker writes to stdout or
//! stderr becomes a `tracing` event (target `nanny::worker`, fields `worker`,
//! `pool`, `stream`), and lines that look like errors or warnings are
//! counted (project-cluster's error and warning monitoring).
//!
//! Lines are bounded ([`MAX_LINE`]); a longer one is cut there. Capture ends
//! at end of file, or once the worker is reaped and what it wrote is read
//! (a grandchild holding the pipe open cannot keep it going).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest line kept, in bytes.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Error and warning lines seen on one worker's output.
#[derive(Debug, Default)]
pub(crate) struct LogCounts {
    pub(crate) errors: AtomicU64,
    pub(crate) warnings: AtomicU64,
}

/// How a line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
    Plain,
}

/// Classifies a line by the words in it, case-insensitively: `error`,
/// `panic`, `fatal` and `exception` make an error; `warn` a warning.
pub(crate) fn classify(line: &str) -> Severity {
    let lower = line.to_ascii_lowercase();
    if ["error", "panic", "fatal", "exception"]
        .iter()
        .any(|w| lower.contains(w))
    {
        Severity::Error
    } else if lower.contains("warn") {
        Severity::Warning
    } else {
        Severity::Plain
    }
}

/// Starts capturing one stream of worker `id`.
pub(crate) fn capture<R>(
    tracker: &TaskTracker,
    reader: R,
    id: u64,
    pool: Arc<str>,
    stream: &'static str,
    counts: Arc<LogCounts>,
    gone: CancellationToken,
) where
    R: AsyncRead + Send + Unpin + 'static,
{
    let mut reader = BufReader::new(reader);
    tracker.spawn(async move {
        let mut line = Vec::new();
        loop {
            let more = tokio::select! {
                biased;
                more = next_line(&mut reader, &mut line) => more,
                () = gone.cancelled() => break,
            };
            match more {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            match classify(text) {
                Severity::Error => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "nanny::worker", worker = id, pool = %pool, stream, "{text}");
                }
                Severity::Warning => {
                    counts.warnings.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "nanny::worker", worker = id, pool = %pool, stream, "{text}");
                }
                Severity::Plain => {
                    tracing::info!(target: "nanny::worker", worker = id, pool = %pool, stream, "{text}");
                }
            }
        }
    });
}

/// Reads one line into `line` (cleared first), keeping at most [`MAX_LINE`]
/// bytes of it and skipping the rest. `Ok(false)` at end of file with
/// nothing read.
async fn next_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_by_their_words() {
        assert_eq!(classify("ERROR: disk full"), Severity::Error);
        assert_eq!(classify("thread 'main' panicked at src/main.rs"), Severity::Error);
        assert_eq!(classify("Warning: slow query"), Severity::Warning);
        assert_eq!(classify("listening on :8080"), Severity::Plain);
    }

    #[tokio::test]
    async fn captured_lines_are_counted_and_long_lines_cut() {
        let (mut w, r) = tokio::io::duplex(1024);
        let tracker = TaskTracker::new();
        let counts = Arc::new(LogCounts::default());
        capture(
            &tracker,
            r,
            1,
            "p".into(),
            "stdout",
            counts.clone(),
            CancellationToken::new(),
        );
        use tokio::io::AsyncWriteExt;
        let long = "x".repeat(MAX_LINE + 10);
        w.write_all(format!("ok\nerror one\nwarning two\n{long}\nerror three\n").as_bytes())
            .await
            .unwrap();
        drop(w);
        tracker.close();
        tracker.wait().await;
        assert_eq!(counts.errors.load(Ordering::Relaxed), 2);
        assert_eq!(counts.warnings.load(Ordering::Relaxed), 1);
    }
}
