//! [`InFlight`]: the attempts a worker has received and not finished, and
//! the request halves still waiting for each other. Owned by the session
//! task alone; every change goes through its methods, which keep the
//! drain's view (`idle`) true after each one.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap;
use tokio::sync::watch;
use uuid::Uuid;

use crate::attempt::{Attempt, Slots};
use crate::matcher::{Arrival, Pending, Waiting};
use crate::protocol::{AttemptKey, RequestFrame};
use crate::socket::Attachment;

/// The most attempts one worker holds at once (registered, not finished).
/// At this bound the session stops reading from the supervisor until one
/// finishes: backpressure on the reader, never a dropped frame. The
/// supervisor's per-worker concurrency cap (default 1024) stays below it.
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

/// A snapshot of one in-flight request, from
/// [`Worker::requests`](crate::Worker::requests).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The request id.
    pub id: Uuid,
    /// The attempt number.
    pub attempt: u32,
    /// When the request was first enqueued.
    pub created_at: SystemTime,
    /// Whether [`Request::ack`](crate::Request::ack) was called.
    pub acked: bool,
    /// Whether the attempt was cancelled (its handler may still be running).
    pub cancelled: bool,
}

/// A registered attempt on its way to `serve`, which makes a
/// [`Request`](crate::Request) of it.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) frame: RequestFrame,
    pub(crate) attempt: Arc<Attempt>,
    pub(crate) attachment: Option<Attachment>,
}

/// What became of a cancel.
#[derive(Debug)]
pub(crate) enum Cancelled {
    /// A frame or a descriptor waiting for its other half was dropped.
    Waiting(Waiting),
    /// An in-flight attempt's token was tripped.
    InFlight,
    /// Nothing known under that key (remembered, with an fd channel).
    Unknown,
}

/// The in-flight table and the matcher.
#[derive(Debug)]
pub(crate) struct InFlight {
    table: FxHashMap<AttemptKey, Arc<Attempt>>,
    pending: Pending,
    /// Whether the fd channel exists (a cancel for an unknown attempt is
    /// then remembered: its inline request may still be on its way).
    fd_channel: bool,
    served: u64,
    /// True when nothing is in flight and no frame waits for its
    /// descriptor: what a soft-kill drain waits for.
    idle: watch::Sender<bool>,
}

impl InFlight {
    pub(crate) fn new(fd_channel: bool) -> (Self, watch::Receiver<bool>) {
        let (idle, idle_rx) = watch::channel(true);
        let this = Self {
            table: FxHashMap::default(),
            pending: Pending::default(),
            fd_channel,
            served: 0,
            idle,
        };
        (this, idle_rx)
    }

    /// Republishes `idle`; called at the end of every mutating method.
    /// Receivers are told only of a change to idle, the one thing they
    /// wait for (`wait_for(|&idle| idle)`): a change to busy is stored
    /// without waking anyone. A watch's notification is about 900
    /// instructions (its waiters' lists, locked one by one), and on a link
    /// that serves one request at a time `idle` changes twice per request.
    fn sync(&self) {
        let idle = self.table.is_empty() && self.pending.waiting_frames() == 0;
        self.idle
            .send_if_modified(|v| std::mem::replace(v, idle) != idle && idle);
    }

    /// Whether there is room for one more attempt.
    pub(crate) fn has_room(&self) -> bool {
        self.table.len() < MAX_IN_FLIGHT
    }

    pub(crate) fn contains(&self, key: AttemptKey) -> bool {
        self.table.contains_key(&key)
    }

    /// Attempts finished since start.
    pub(crate) fn served(&self) -> u64 {
        self.served
    }

    /// Registers an attempt with the slots reserved for it (an `Accepted`
    /// slot means an attachment is here). The caller checked that `frame`'s
    /// attempt is not in the table ([`contains`](Self::contains)).
    pub(crate) fn register(
        &mut self,
        frame: RequestFrame,
        slots: Slots,
        payload_limit: usize,
        attachment: Option<Attachment>,
    ) -> Parts {
        let key = frame.key();
        debug_assert!(!self.table.contains_key(&key), "a duplicate attempt");
        let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(frame.created_at_ms);
        let attempt = Arc::new(Attempt::new(
            key,
            created_at,
            // Its cancellation is not a child of the link's token: linking
            // and unlinking one per attempt costs two locks of the parent.
            // The session trips every attempt in the table itself when the
            // link closes (`cancel_all`).
            payload_limit,
            slots,
        ));
        self.table.insert(key, Arc::clone(&attempt));
        self.sync();
        Parts {
            frame,
            attempt,
            attachment,
        }
    }

    /// Attempts are over (their tickets were dropped).
    pub(crate) fn done(&mut self, keys: impl Iterator<Item = AttemptKey>) {
        for key in keys {
            if self.table.remove(&key).is_some() {
                self.served += 1;
            }
        }
        self.sync();
    }

    /// A `Cancel` from the supervisor.
    pub(crate) fn cancel(&mut self, key: AttemptKey) -> Cancelled {
        let outcome = if let Some(waiting) = self.pending.cancel(key) {
            Cancelled::Waiting(waiting)
        } else if let Some(attempt) = self.table.get(&key) {
            attempt.cancel.cancel();
            Cancelled::InFlight
        } else {
            if self.fd_channel {
                self.pending.remember_cancelled(key);
            }
            Cancelled::Unknown
        };
        self.sync();
        outcome
    }

    /// Trips every in-flight token (hard kill, or the link closed: nothing
    /// will be answered).
    pub(crate) fn cancel_all(&self) {
        for attempt in self.table.values() {
            attempt.cancel.cancel();
        }
    }

    /// A request frame that announces an attachment.
    pub(crate) fn frame_arrived(&mut self, frame: RequestFrame) -> Arrival {
        let arrival = self.pending.frame(frame);
        self.sync();
        arrival
    }

    /// An attachment descriptor without its frame.
    pub(crate) fn fd_arrived(&mut self, key: AttemptKey, fd: OwnedFd) -> Arrival {
        let arrival = self.pending.fd(key, fd);
        self.sync();
        arrival
    }

    /// A request that came whole (inline): whether it may run.
    pub(crate) fn inline(&mut self, key: AttemptKey) -> Result<(), &'static str> {
        self.pending.inline(key)
    }

    /// How many frames and descriptors wait in the matcher.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// A snapshot for [`Worker::requests`](crate::Worker::requests):
    /// attempts not yet answered.
    pub(crate) fn snapshot(&self) -> Vec<RequestInfo> {
        let mut infos = Vec::with_capacity(self.table.len());
        for (&AttemptKey { id, attempt }, a) in &self.table {
            let (acked, answered) = a.flags();
            if !answered {
                infos.push(RequestInfo {
                    id,
                    attempt,
                    created_at: a.created_at,
                    acked,
                    cancelled: a.cancel.is_cancelled(),
                });
            }
        }
        infos
    }

    /// How many attempts are not yet answered, for a heartbeat.
    pub(crate) fn unanswered(&self) -> u32 {
        let n = self.table.values().filter(|a| !a.flags().1).count();
        n.try_into().unwrap_or(u32::MAX)
    }
}
