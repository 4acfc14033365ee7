//! The matcher: where the descriptors of split requests meet their
//! request frames. Pure data, owned by the session's in-flight table.
//!
//! A request with an attachment usually comes whole in one fd channel
//! message: the descriptor with the request frame inline. A frame too large
//! for that comes on the framed socket, and its descriptor alone on the fd
//! channel; the two then travel on different sockets, so either may come
//! first. Whichever comes first waits in [`Pending`] for the other (keyed by
//! [`AttemptKey`]).
//!
//! Unmatched entries are bounded: past [`MAX_PENDING`] the oldest is
//! evicted (the caller closes a descriptor, or answers a frame with an
//! `attachment` error). A cancel for a frame still waiting for its
//! descriptor drops the frame and remembers the key (the last
//! [`MAX_CANCELLED`] of them), so that the descriptor, when it comes, is
//! refused; so does a cancel for an attempt not seen yet, whose inline
//! request may still be unread on the fd channel. A descriptor whose frame
//! never comes stays until it is evicted or the worker exits.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::fd::OwnedFd;

use crate::protocol::{AttemptKey, RequestFrame};

/// The most unmatched frames and descriptors kept waiting for each other.
pub(crate) const MAX_PENDING: usize = 1024;

/// How many cancelled keys are remembered, to close their late descriptors.
pub(crate) const MAX_CANCELLED: usize = 1024;

/// One side of a match, waiting for the other.
#[derive(Debug)]
pub(crate) enum Waiting {
    Frame(RequestFrame),
    Fd(OwnedFd),
}

/// Frames waiting for their descriptor and descriptors waiting for their
/// frame, oldest first; and the keys of recently cancelled waiting frames.
#[derive(Debug)]
pub(crate) struct Pending {
    cap: usize,
    next: u64,
    entries: HashMap<AttemptKey, (u64, Waiting)>,
    /// Insertion order of `entries`, for eviction.
    order: BTreeMap<u64, AttemptKey>,
    cancelled: VecDeque<AttemptKey>,
    cancelled_set: HashSet<AttemptKey>,
    /// How many of `entries` are frames (a drain waits for them).
    frames: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Self::with_capacity(MAX_PENDING)
    }
}

/// What became of an arrival in the [`Pending`] table.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// Both halves are here.
    Matched(RequestFrame, OwnedFd),
    /// Stored; possibly the oldest entry was evicted to make room.
    Stored { evicted: Option<(AttemptKey, Waiting)> },
    /// Refused: a duplicate, or a descriptor for a cancelled attempt. The
    /// refused item is dropped (a descriptor closed) by the caller.
    Refused(&'static str, Waiting),
}

impl Pending {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            cancelled: VecDeque::new(),
            cancelled_set: HashSet::new(),
            frames: 0,
        }
    }

    /// How many frames and descriptors are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many request frames wait for their descriptor.
    pub(crate) fn waiting_frames(&self) -> usize {
        self.frames
    }

    /// A request frame with an attachment arrived.
    pub(crate) fn frame(&mut self, frame: RequestFrame) -> Arrival {
        let key = frame.key();
        match self.entries.get(&key) {
            Some((_, Waiting::Fd(_))) => {
                let Some(Waiting::Fd(fd)) = self.remove(key) else {
                    unreachable!("just seen");
                };
                Arrival::Matched(frame, fd)
            }
            Some((_, Waiting::Frame(_))) => {
                Arrival::Refused("a duplicate request frame", Waiting::Frame(frame))
            }
            None => self.store(key, Waiting::Frame(frame)),
        }
    }

    /// An attachment descriptor arrived.
    pub(crate) fn fd(&mut self, key: AttemptKey, fd: OwnedFd) -> Arrival {
        if self.take_cancelled(key) {
            return Arrival::Refused("the attempt was cancelled", Waiting::Fd(fd));
        }
        match self.entries.get(&key) {
            Some((_, Waiting::Frame(_))) => {
                let Some(Waiting::Frame(frame)) = self.remove(key) else {
                    unreachable!("just seen");
                };
                Arrival::Matched(frame, fd)
            }
            Some((_, Waiting::Fd(_))) => Arrival::Refused("a second descriptor", Waiting::Fd(fd)),
            None => self.store(key, Waiting::Fd(fd)),
        }
    }

    /// A request came whole (inline): whether it may run. Not if its
    /// attempt was cancelled already, or half of it came the other way.
    pub(crate) fn inline(&mut self, key: AttemptKey) -> Result<(), &'static str> {
        if self.take_cancelled(key) {
            Err("the attempt was cancelled")
        } else if self.entries.contains_key(&key) {
            Err("a duplicate of a request waiting for its other half")
        } else {
            Ok(())
        }
    }

    /// A cancel arrived: drops what waits under `key` and, if that was a
    /// frame, remembers the key so that its descriptor is closed when it
    /// comes.
    pub(crate) fn cancel(&mut self, key: AttemptKey) -> Option<Waiting> {
        let removed = self.remove(key)?;
        if matches!(removed, Waiting::Frame(_)) {
            self.remember_cancelled(key);
        }
        Some(removed)
    }

    /// Remembers a cancelled key (the last [`MAX_CANCELLED`]), so that what
    /// comes for it later is closed.
    pub(crate) fn remember_cancelled(&mut self, key: AttemptKey) {
        if self.cancelled_set.insert(key) {
            self.cancelled.push_back(key);
            if self.cancelled.len() > MAX_CANCELLED {
                if let Some(old) = self.cancelled.pop_front() {
                    self.cancelled_set.remove(&old);
                }
            }
        }
    }

    /// Forgets `key` if it was cancelled; true if it was.
    fn take_cancelled(&mut self, key: AttemptKey) -> bool {
        let was = self.cancelled_set.remove(&key);
        if was {
            self.cancelled.retain(|k| *k != key);
        }
        was
    }

    fn store(&mut self, key: AttemptKey, item: Waiting) -> Arrival {
        let evicted = if self.entries.len() >= self.cap {
            self.order
                .pop_first()
                .and_then(|(_, old)| self.entries.remove(&old).map(|(_, w)| (old, w)))
        } else {
            None
        };
        if let Some((_, Waiting::Frame(_))) = &evicted {
            self.frames -= 1;
        }
        if let Waiting::Frame(_) = item {
            self.frames += 1;
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key);
        self.entries.insert(key, (seq, item));
        Arrival::Stored { evicted }
    }

    fn remove(&mut self, key: AttemptKey) -> Option<Waiting> {
        let (seq, item) = self.entries.remove(&key)?;
        self.order.remove(&seq);
        if let Waiting::Frame(_) = item {
            self.frames -= 1;
        }
        Some(item)
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waiting::Frame(_) => "request frame",
            Waiting::Fd(_) => "attachment descriptor",
        })
    }
}
