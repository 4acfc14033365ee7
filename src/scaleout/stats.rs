//! The scale-out counters of one supervisor: [`QueueStats`], read by
//! [`Supervisor::queue_stats`](crate::Supervisor::queue_stats) and
//! `inspect()`, kept as atomics in [`Counters`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What this host's shared queue did since start.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Whether the last call to the backend (Redis) succeeded.
    pub connected: bool,
    /// Whether this host is under memory pressure now
    /// ([`RedisQueue::min_available_memory`](crate::RedisQueue::min_available_memory)):
    /// it takes no work meanwhile.
    #[serde(default)]
    pub under_pressure: bool,
    /// Requests this host's callers added to a request stream.
    pub sent: u64,
    /// Entries this host read from request streams as new work.
    pub reads: u64,
    /// Entries this host reclaimed from another (or an earlier) consumer.
    pub claims: u64,
    /// Completions that won: the reply was written.
    pub completed: u64,
    /// Completions refused because the entry had been reclaimed meanwhile.
    pub fenced: u64,
    /// Completions of a request someone had completed already.
    pub duplicate_completions: u64,
    /// Running requests whose lease was lost (their worker was told to cancel).
    pub lost: u64,
    /// Running requests cancelled because their caller cancelled.
    pub remote_cancels: u64,
    /// Deliveries released at stop for other hosts to take at once.
    pub handed_back: u64,
    /// Replies for requests that no longer waited (answered, timed out, cancelled).
    pub late_replies: u64,
    /// Entries or replies that could not be decoded.
    pub malformed: u64,
    /// Backend (Redis) calls that failed.
    pub errors: u64,
    /// The longest idle time of a delivery this host reclaimed, at its
    /// claim (ms): how long after its owner's last renewal (or its
    /// delivery) it was taken over, the reclaim latency. Handbacks, which
    /// are claimed at once, are left out.
    #[serde(default)]
    pub claim_idle_max_ms: u64,
    /// The sum of those idle times (ms): over [`claims`](Self::claims)
    /// less the handbacks taken, their mean.
    #[serde(default)]
    pub claim_idle_total_ms: u64,
}

/// One counter of [`QueueStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Sent,
    Reads,
    Claims,
    Completed,
    Fenced,
    Duplicate,
    Lost,
    RemoteCancel,
    HandedBack,
    LateReply,
    Malformed,
    Error,
    /// Not a count: the sum of the claimed idle times.
    ClaimIdleTotal,
}

/// The live counters behind [`QueueStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connected: AtomicBool,
    under_pressure: AtomicBool,
    counts: [AtomicU64; 13],
    claim_idle_max: AtomicU64,
}

impl Counters {
    /// Adds one to `count`.
    pub(crate) fn add(&self, count: Count) {
        self.counts[count as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the idle time of a reclaimed delivery.
    pub(crate) fn claimed_idle(&self, idle: std::time::Duration) {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        self.counts[Count::ClaimIdleTotal as usize].fetch_add(ms, Ordering::Relaxed);
        self.claim_idle_max.fetch_max(ms, Ordering::Relaxed);
    }

    /// Adds one to [`Count::Error`] if `ok` is false, and records whether
    /// Redis answered.
    pub(crate) fn outcome(&self, ok: bool) {
        self.connected.store(ok, Ordering::Relaxed);
        if !ok {
            self.add(Count::Error);
        }
    }

    /// Records whether the host is under memory pressure.
    pub(crate) fn pressure(&self, under: bool) {
        self.under_pressure.store(under, Ordering::Relaxed);
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> QueueStats {
        let c = |count: Count| self.counts[count as usize].load(Ordering::Relaxed);
        QueueStats {
            connected: self.connected.load(Ordering::Relaxed),
            under_pressure: self.under_pressure.load(Ordering::Relaxed),
            sent: c(Count::Sent),
            reads: c(Count::Reads),
            claims: c(Count::Claims),
            completed: c(Count::Completed),
            fenced: c(Count::Fenced),
            duplicate_completions: c(Count::Duplicate),
            lost: c(Count::Lost),
            remote_cancels: c(Count::RemoteCancel),
            handed_back: c(Count::HandedBack),
            late_replies: c(Count::LateReply),
            malformed: c(Count::Malformed),
            errors: c(Count::Error),
            claim_idle_max_ms: self.claim_idle_max.load(Ordering::Relaxed),
            claim_idle_total_ms: c(Count::ClaimIdleTotal),
        }
    }
}
