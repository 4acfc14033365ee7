//! The writer thread: the one place log files are written, so that the
//! capture tasks never wait on a disk.
//!
//! Lines reach it through a bounded queue ([`QUEUE`] lines). The capture
//! side only ever `try_send`s: when the writer falls behind and the queue
//! is full, the line is dropped and counted per pool, and the writer puts
//! `nanny: N lines dropped` into that pool's file when it catches up (before
//! the pool's next line, or within [`NOTE_EVERY`] if none comes).
//!
//! The writer has one place per pool of the file (a pool's index), each
//! with its open file or none (a pool that logs to stderr). A reload swaps
//! a pool's file in the same queue as the lines ([`Writer::swap`]), so
//! the lines queued before the swap go to the old file and the rest to the
//! new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::files::{Limits, RotatingFile};
use super::LogLine;

/// Lines waiting for the writer, all pools together.
pub(crate) const QUEUE: usize = 4096;

/// How often an idle writer writes the notes of lines dropped.
const NOTE_EVERY: Duration = Duration::from_millis(500);

enum Msg {
    /// A line for the file of pool number `.0`.
    Line(usize, Arc<LogLine>),
    /// Pool number `.0`'s file from now on: opened here, after the lines
    /// before it, so the old file is done with (its rotations too) before
    /// the new one opens; the old one stays if the new cannot be opened.
    Swap(usize, Option<Limits>, SyncSender<Result<(), String>>),
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
    /// Starts the thread writing `files`, one place per pool, by its
    /// number in [`Writer::send`] (`None`: the pool has no file for now).
    pub(crate) fn start(files: Vec<(String, Option<RotatingFile>)>) -> std::io::Result<Self> {
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

    /// Makes the file of `limits` (or none) pool `index`'s, after the
    /// lines queued before it, and waits until it is open. Blocking (for
    /// room in the queue, which the writer drains as fast as its disk
    /// allows, and for the open): call it off the runtime, from a reload.
    ///
    /// # Errors
    ///
    /// The new file cannot be opened (the old one stays), or the writer
    /// has ended.
    pub(crate) fn swap(&self, index: usize, limits: Option<Limits>) -> Result<(), String> {
        let (reply, done) = mpsc::sync_channel(1);
        let ended = || "the log writer has ended".to_owned();
        self.tx
            .send(Msg::Swap(index, limits, reply))
            .map_err(|_| ended())?;
        done.recv().map_err(|_| ended())?
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

fn run(files: Vec<(String, Option<RotatingFile>)>, rx: &mpsc::Receiver<Msg>, dropped: &[AtomicU64]) {
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
            Ok(Msg::Swap(i, limits, reply)) => {
                files.note_drops(dropped, Some(i));
                let _ = reply.send(files.swap(i, limits.as_ref()));
            }
            Err(RecvTimeoutError::Timeout) => files.note_drops(dropped, None),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    files.note_drops(dropped, None);
}

/// The open files, and which have failed (warned about once).
struct Files {
    files: Vec<(String, Option<RotatingFile>)>,
    failed: Vec<bool>,
}

impl Files {
    fn swap(&mut self, i: usize, limits: Option<&Limits>) -> Result<(), String> {
        let (pool, file) = &mut self.files[i];
        let new = match limits {
            Some(l) => Some(super::open_file(pool, l)?),
            None => None,
        };
        *file = new;
        self.failed[i] = false;
        Ok(())
    }

    fn write(&mut self, i: usize, bytes: &[u8]) {
        // No file: the hub sends a pool's lines here only while it has one
        // (it routes under the lock a reload takes to move it), so nothing.
        let (pool, Some(file)) = &mut self.files[i] else {
            return;
        };
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
        run(vec![("p".into(), Some(file))], &rx, &dropped);
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
