//! The writer thread: the one place log files are written, so that the
//! capture tasks never wait on a disk.
//!
//! Lines reach it through a bounded queue ([`QUEUE`] lines). The capture
//! side only ever `try_send`s: when the writer falls behind and the queue
//! is full, the line is dropped and counted per pool, and the writer puts
//! `nanny: N lines dropped` into that pool's file when it catches up (before
//! the pool's next line, or within [`NOTE_EVERY`] if none comes).
//!
//! A file that cannot be written (a full disk) does not stop the writer:
//! the failure is logged once, the pool's lines are counted as lost, each
//! later line tries the file again (its path reopened at most every
//! [`REOPEN_EVERY`], for a file replaced meanwhile), and the first that
//! goes through is preceded by `nanny: N lines lost: ...` in the file and
//! a warning that it can be written again.
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
use std::time::{Duration, Instant};

use super::files::{Limits, RotatingFile};
use super::LogLine;

/// Lines waiting for the writer, all pools together.
pub(crate) const QUEUE: usize = 4096;

/// How often an idle writer writes the notes of lines dropped.
const NOTE_EVERY: Duration = Duration::from_millis(500);

/// How often a file that cannot be written is opened again by its path.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

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
        failing: files.iter().map(|_| None).collect(),
        files,
    };
    let mut buf = Vec::new();
    loop {
        match rx.recv_timeout(NOTE_EVERY) {
            Ok(Msg::Line(i, line)) => {
                files.note_drops(dropped, Some(i));
                buf.clear();
                line.write_to(&mut buf);
                files.write(i, &buf, 1);
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

/// A pool's file that cannot be written (a full disk, say): its lines are
/// counted as lost, and the writer tries the file again with each line,
/// reopening its path at most every [`REOPEN_EVERY`].
struct Failing {
    /// Lines lost since the first failure.
    lost: u64,
    /// The first failure's error.
    error: String,
    /// When the path may be reopened next.
    reopen_at: Instant,
}

/// The open files, and which are failing (warned about once a failure,
/// and once again when the file can be written).
struct Files {
    files: Vec<(String, Option<RotatingFile>)>,
    failing: Vec<Option<Failing>>,
}

impl Files {
    fn swap(&mut self, i: usize, limits: Option<&Limits>) -> Result<(), String> {
        let (pool, file) = &mut self.files[i];
        let new = match limits {
            Some(l) => Some(super::open_file(pool, l)?),
            None => None,
        };
        *file = new;
        if let Some(f) = self.failing[i].take() {
            tracing::warn!(pool = %pool, lost = f.lost, "{} lines were lost before the pool's log file was replaced", f.lost);
        }
        Ok(())
    }

    /// Writes `bytes`, `lines` lines, to pool `i`'s file.
    fn write(&mut self, i: usize, bytes: &[u8], lines: u64) {
        // No file: the hub sends a pool's lines here only while it has one
        // (it routes under the lock a reload takes to move it), so nothing.
        let (pool, Some(file)) = &mut self.files[i] else {
            return;
        };
        let failing = &mut self.failing[i];
        let written = match failing.as_mut() {
            None => file.write_line(bytes).map(|()| None),
            Some(f) => retry(file, f).and_then(|noted| file.write_line(bytes).map(|()| Some(noted))),
        };
        match written {
            Ok(None) => {}
            Ok(Some(lost)) => {
                *failing = None;
                tracing::warn!(pool = %pool, lost, "the pool's log file can be written again; {lost} lines were lost");
            }
            Err(e) => match failing {
                Some(f) => f.lost += lines,
                None => {
                    tracing::warn!(
                        pool = %pool,
                        "cannot write the pool's log file {}: {e}; its lines are counted as lost until it can be written",
                        file.path().display()
                    );
                    *failing = Some(Failing {
                        lost: lines,
                        error: e.to_string(),
                        reopen_at: Instant::now() + REOPEN_EVERY,
                    });
                }
            },
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
                self.write(i, format!("nanny: {n} lines dropped\n").as_bytes(), n);
            }
        }
    }
}

/// Tries a failing file again before a line: reopens its path when it is
/// time, then writes the note of the lines lost; `Ok` with their count
/// (the note is written: the count starts again).
fn retry(file: &mut RotatingFile, f: &mut Failing) -> std::io::Result<u64> {
    let now = Instant::now();
    if now >= f.reopen_at {
        f.reopen_at = now + REOPEN_EVERY;
        file.reopen()?;
    }
    let note = format!(
        "nanny: {} lines lost: the file could not be written ({})\n",
        f.lost, f.error
    );
    file.write_line(note.as_bytes())?;
    Ok(std::mem::take(&mut f.lost))
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

    #[test]
    fn a_full_disk_loses_lines_counted_and_the_file_says_how_many_once_writable() {
        let dir = std::env::temp_dir().join(format!("nanny-writer-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.join("p.log")).unwrap();
        let limits = Limits {
            dir: dir.clone(),
            max_size: 1 << 20,
            max_total: 1 << 21,
        };
        let file = RotatingFile::open("p", &limits).unwrap();
        let mut files = Files {
            files: vec![("p".into(), Some(file))],
            failing: vec![None],
        };
        let lost = |files: &Files| files.failing[0].as_ref().map(|f| f.lost);
        for text in ["a\n", "b\n", "nanny: 5 lines dropped\n"] {
            let lines = if text.starts_with("nanny") { 5 } else { 1 };
            files.write(0, text.as_bytes(), lines);
        }
        assert_eq!(lost(&files), Some(7));
        // The disk has room again, but the file is still /dev/full until
        // it is reopened.
        std::fs::remove_file(dir.join("p.log")).unwrap();
        files.write(0, b"c\n", 1);
        assert_eq!(lost(&files), Some(8));
        files.failing[0].as_mut().unwrap().reopen_at = Instant::now();
        files.write(0, b"d\n", 1);
        assert_eq!(lost(&files), None);
        files.write(0, b"e\n", 1);
        let text = std::fs::read_to_string(dir.join("p.log")).unwrap();
        assert_eq!(
            text,
            "nanny: 8 lines lost: the file could not be written (No space left on device (os error 28))\nd\ne\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
