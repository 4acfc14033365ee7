//! The bookkeeping of every enqueue: what it became ([`Tally`]), counted by
//! [`tallied`], with [`Outcome`] counting the futures dropped on purpose.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nanny::{EnqueueOptions, Supervisor};
use uuid::Uuid;

use crate::support::Cmd;

/// What became of every enqueue.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Enqueues begun.
    pub(crate) started: AtomicU64,
    /// Enqueues that resolved with an answer.
    pub(crate) ok: AtomicU64,
    /// Enqueues that resolved with a typed error, by kind.
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    /// Enqueue futures dropped on purpose before they resolved.
    pub(crate) dropped: AtomicU64,
    /// Ids of the answers.
    ids: Mutex<HashSet<Uuid>>,
    /// Answers whose id was seen before.
    pub(crate) duplicate_ids: AtomicU64,
    /// Answers that are not the answer to their own request.
    pub(crate) wrong: AtomicU64,
    /// Answers by the attempt that gave them (1 = no retry).
    pub(crate) attempts: Mutex<BTreeMap<u32, u64>>,
    /// The longest time an answered enqueue took, in microseconds.
    pub(crate) max_us: AtomicU64,
}

impl Tally {
    fn errors(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }

    pub(crate) fn resolved(&self) -> u64 {
        self.ok.load(Ordering::SeqCst) + self.errors()
    }

    pub(crate) fn line(&self) -> String {
        format!(
            "started {}, answered {}, errors {} {:?}, dropped on purpose {}, duplicate ids {}, wrong answers {}",
            self.started.load(Ordering::SeqCst),
            self.ok.load(Ordering::SeqCst),
            self.errors(),
            self.errors.lock().unwrap(),
            self.dropped.load(Ordering::SeqCst),
            self.duplicate_ids.load(Ordering::SeqCst),
            self.wrong.load(Ordering::SeqCst),
        )
    }
}

/// Counts one enqueue as dropped unless it resolved first.
struct Outcome<'a> {
    tally: &'a Tally,
    resolved: bool,
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.tally.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// One enqueue of `cmd`, tallied: its answer (checked against `cmd`), its
/// typed error, or (when its future is dropped first) a drop.
pub(crate) async fn tallied(sup: &Supervisor, tally: &Tally, cmd: Cmd) {
    tally.started.fetch_add(1, Ordering::SeqCst);
    let mut outcome = Outcome {
        tally,
        resolved: false,
    };
    let begun = std::time::Instant::now();
    let result = sup.enqueue_with(&cmd, EnqueueOptions::new().retries(3)).await;
    outcome.resolved = true;
    match result {
        Ok(resp) => {
            tally.ok.fetch_add(1, Ordering::SeqCst);
            let took = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
            tally.max_us.fetch_max(took, Ordering::Relaxed);
            *tally.attempts.lock().unwrap().entry(resp.attempt()).or_insert(0) += 1;
            if !tally.ids.lock().unwrap().insert(resp.id()) {
                tally.duplicate_ids.fetch_add(1, Ordering::SeqCst);
            }
            let right = match cmd {
                Cmd::Double(n) => resp.data::<u64>().ok() == Some(n * 2),
                _ => false, // a gate that is never released never answers
            };
            if !right {
                tally.wrong.fetch_add(1, Ordering::SeqCst);
            }
        }
        Err(e) => {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{', '(']).next().unwrap_or_default().to_owned();
            *tally.errors.lock().unwrap().entry(kind).or_insert(0) += 1;
        }
    }
}

/// `fut`, dropped unless it finishes within `limit`.
pub(crate) async fn or_drop<F: Future<Output = ()>>(limit: Duration, fut: F) {
    let _ = tokio::time::timeout(limit, fut).await;
}
