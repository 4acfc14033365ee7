//! Output capture for `silent` pools (see [`crate::output`]): each line a
//! worker writes to stdout or stderr is classified, counted (errors and
//! warnings: project-cluster's monitoring), and given to the
//! [`Builder::on_output`](crate::Builder::on_output) sink, or, without one,
//! becomes a `tracing` event (target `nanny::worker`, fields `worker`,
//! `pool`, `stream`).
//!
//! Lines are bounded ([`MAX_LINE`]); a longer one is cut there. Capture ends
//! at end of file, or once the worker is reaped and what it wrote is read
//! (a grandchild holding the pipe open cannot keep it going).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::WorkerId;
pub(crate) use crate::output::MAX_LINE;
use crate::output::{OutputLine, OutputStream, Severity, Sink};

/// Error and warning lines seen on one worker's output.
#[derive(Debug, Default)]
pub(crate) struct LogCounts {
    pub(crate) errors: AtomicU64,
    pub(crate) warnings: AtomicU64,
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

/// Whose output is captured, and where its lines go: shared by the
/// worker's two capture tasks.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    /// The worker.
    pub(crate) worker: WorkerId,
    /// Its pool.
    pub(crate) pool: Arc<str>,
    /// Its slot's name (`pool:NN`).
    pub(crate) name: Arc<str>,
    /// Its error and warning counts.
    pub(crate) counts: Arc<LogCounts>,
    /// The builder's `on_output`, if set.
    pub(crate) sink: Option<Sink>,
}

impl Capture {
    /// Counts `bytes` (one line, without its newline) and hands it on.
    fn line(&self, stream: OutputStream, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let severity = classify(&text);
        match severity {
            Severity::Error => self.counts.errors.fetch_add(1, Ordering::Relaxed),
            Severity::Warning => self.counts.warnings.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Some(sink) = &self.sink {
            (sink.0)(&OutputLine {
                pool: &self.pool,
                worker: self.worker,
                name: &self.name,
                stream,
                bytes,
                severity,
            });
            return;
        }
        let (id, pool, stream) = (self.worker.get(), &*self.pool, stream.as_str());
        match severity {
            Severity::Error => tracing::error!(target: "nanny::worker", worker = id, pool, stream, "{text}"),
            Severity::Warning => tracing::warn!(target: "nanny::worker", worker = id, pool, stream, "{text}"),
            _ => tracing::info!(target: "nanny::worker", worker = id, pool, stream, "{text}"),
        }
    }
}

/// Starts capturing one stream of a worker.
pub(crate) fn capture<R>(
    tracker: &TaskTracker,
    reader: R,
    stream: OutputStream,
    who: Capture,
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
            who.line(stream, trim_newline(&line));
        }
    });
}

/// `line` without its trailing `\n`, and a `\r` before it.
fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
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
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = {
            let seen = Arc::clone(&seen);
            Sink(Arc::new(move |l: &OutputLine<'_>| {
                seen.lock()
                    .unwrap()
                    .push((l.bytes.len(), l.severity, l.name.to_owned()))
            }))
        };
        let who = Capture {
            worker: WorkerId(1),
            pool: "p".into(),
            name: "p:01".into(),
            counts: counts.clone(),
            sink: Some(sink),
        };
        capture(&tracker, r, OutputStream::Stdout, who, CancellationToken::new());
        use tokio::io::AsyncWriteExt;
        let long = "x".repeat(MAX_LINE + 10);
        w.write_all(format!("ok\r\nerror one\nwarning two\n{long}\nerror three\n").as_bytes())
            .await
            .unwrap();
        drop(w);
        tracker.close();
        tracker.wait().await;
        assert_eq!(counts.errors.load(Ordering::Relaxed), 2);
        assert_eq!(counts.warnings.load(Ordering::Relaxed), 1);
        let seen = seen.lock().unwrap();
        let lens: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            lens,
            [2, 9, 11, MAX_LINE, 11],
            "newlines trimmed, the long line cut"
        );
        assert_eq!(seen[1].1, Severity::Error);
        assert!(seen.iter().all(|s| s.2 == "p:01"));
    }
}
