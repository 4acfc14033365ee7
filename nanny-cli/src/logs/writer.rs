//! The writer thread: the one place log files are written, so that the
//! capture tasks never wait on a disk.
//!
//! Lines reach it through a bounded queue ([`QUEUE`] lines). The capture
//! side only ever `try_send`s: when the writer falls behind and the queue
//! is full, the line is dropped and counted per pool, and the writer puts
//! `nanny: N lines dropped` into that pool's file when it catches up (before
//! the pool's next line, or within [`NOTE_EVERY`] if none comes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::files::RotatingFile;
use super::LogLine;

/// Lines waiting for the writer, all pools together.
pub(crate) const QUEUE: usize = 4096;

/// How often an idle writer writes the notes of lines dropped.
const NOTE_EVERY: Duration = Duration::from_millis(500);

enum Msg {
    /// A line for the file of pool number `.0`.
    Line(usize, Arc<LogLine>),
    /// Write the notes and end.
    Stop,
}

/// The capture side's handle on the writer thread.
pub(crate) struct Writer {
    tx: SyncSender<Msg>,
    dropped: Arc<[AtomicU64]>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the thread writing `files` (a file's index is its pool's
    /// number in [`Writer::send`]).
    pub(crate) fn start(files: Vec<(String, RotatingFile)>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped: Arc<[AtomicU64]> = files.iter().map(|_| AtomicU64::new(0)).collect();
        let counts = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("nanny-logs".into())
            .spawn(move || run(files, &rx, &counts))?;
        Ok(Self {
            tx,
            dropped,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `line` for file `index`; dropped and counted when the queue
    /// is full. Never blocks.
    pub(crate) fn send(&self, index: usize, line: Arc<LogLine>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Line(index, line)) {
            self.dropped[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lets the thread write what is queued, and waits for it to end.
    /// Blocking: call it off the runtime (or at the very end).
    pub(crate) fn finish(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(files: Vec<(String, RotatingFile)>, rx: &mpsc::Receiver<Msg>, dropped: &[AtomicU64]) {
    let mut files = Files {
        failed: vec![false; files.len()],
        files,
    };
    let mut buf = Vec::new();
    loop {
        match rx.recv_timeout(NOTE_EVERY) {
            Ok(Msg::Line(i, line)) => {
                files.note_drops(dropped, Some(i));
                buf.clear();
                line.write_to(&mut buf);
                files.write(i, &buf);
            }
            Err(RecvTimeoutError::Timeout) => files.note_drops(dropped, None),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    files.note_drops(dropped, None);
}

/// The open files, and which have failed (warned about once).
struct Files {
    files: Vec<(String, RotatingFile)>,
    failed: Vec<bool>,
}

impl Files {
    fn write(&mut self, i: usize, bytes: &[u8]) {
        let (pool, file) = &mut self.files[i];
        match file.write_line(bytes) {
            Ok(()) => self.failed[i] = false,
            Err(e) => {
                if !std::mem::replace(&mut self.failed[i], true) {
                    tracing::warn!(pool = %pool, "cannot write the pool's log file: {e}");
                }
            }
        }
    }

    /// Writes the note of lines dropped of pool `only`, or of every pool.
    fn note_drops(&mut self, dropped: &[AtomicU64], only: Option<usize>) {
        for (i, count) in dropped.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                self.write(i, format!("nanny: {n} lines dropped\n").as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::logs::files::Limits;

    fn line(text: &str) -> Arc<LogLine> {
        Arc::new(LogLine {
            time: SystemTime::UNIX_EPOCH,
            pool: "p".into(),
            id: serde_json::from_str("1").unwrap(), // ids have no public constructor
            worker: "p:01".into(),
            stream: nanny::output::OutputStream::Stdout,
            line: text.into(),
        })
    }

    #[test]
    fn lines_that_do_not_fit_are_dropped_counted_and_noted_before_the_next() {
        let dir = std::env::temp_dir().join(format!("nanny-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let limits = Limits {
            dir: dir.clone(),
            max_size: 1 << 20,
            max_total: 1 << 21,
        };
        let file = RotatingFile::open("p", &limits).unwrap();
        // A writer whose thread has not started: a queue of two.
        let (tx, rx) = mpsc::sync_channel(2);
        let writer = Writer {
            tx,
            dropped: Arc::from([AtomicU64::new(0)]),
            thread: Mutex::new(None),
        };
        for text in ["a", "b", "c", "d", "e"] {
            writer.send(0, line(text));
        }
        assert_eq!(writer.dropped[0].load(Ordering::Relaxed), 3);
        let dropped = Arc::clone(&writer.dropped);
        drop(writer); // the thread drains the queue, then ends
        run(vec![("p".into(), file)], &rx, &dropped);
        let text = std::fs::read_to_string(dir.join("p.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "nanny: 3 lines dropped",
                "1970-01-01T00:00:00.000Z p:01 stdout: a",
                "1970-01-01T00:00:00.000Z p:01 stdout: b",
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
