//! The ledger's side of the task's loop: request timers (attempt timeouts,
//! deadlines) and news from the queue backend, and moving the timers after
//! a pause of the process.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Expired, Ledger, LedgerInput};

impl Ledger {
    /// The ledger's next input for the task: a fired request timer (its key
    /// cleared first, so resolving afterwards cannot remove another timer)
    /// and when it was due, or news from the queue backend.
    pub(in crate::supervisor) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<LedgerInput> {
        if let Poll::Ready(news) = self.queue.poll_news(cx) {
            return Poll::Ready(LedgerInput::News(news));
        }
        self.poll_expired(cx)
            .map(|(expired, due)| LedgerInput::Timer(expired, due))
    }

    /// Lets the queue backend flush and let go, once every request is resolved.
    pub(in crate::supervisor) async fn close(&mut self) {
        debug_assert!(self.entries.is_empty(), "closed with requests pending");
        self.queue.close().await;
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<(Expired, Instant)> {
        // Most requests have no timer: skip the wheel. The task polls again
        // after every input, so a timer inserted later is seen.
        if self.timers.is_empty() {
            return Poll::Pending;
        }
        match self.timers.poll_expired(cx) {
            Poll::Ready(Some(fired)) => {
                let due = fired.deadline().into_std();
                let expired = fired.into_inner();
                match expired {
                    Expired::Attempt(key) => {
                        if let Some(e) = self.entries.get_mut(&key.id).filter(|e| e.attempt == key.attempt) {
                            e.timer = None;
                        }
                    }
                    Expired::Deadline(id) => {
                        if let Some(e) = self.entries.get_mut(&id) {
                            e.deadline = None;
                        }
                    }
                }
                Poll::Ready((expired, due))
            }
            // An empty queue is polled again once a timer is inserted.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// The supervisor was paused (SIGSTOP, a VM pause, a long scheduler
    /// stall) for about `gap`: time it did not see pass counts against no
    /// request, so every timer moves later by `gap`.
    pub(in crate::supervisor) fn shift_timers(&mut self, gap: Duration) {
        for e in self.entries.values() {
            for key in [e.timer, e.deadline].into_iter().flatten() {
                let when = self.timers.deadline(&key) + gap;
                self.timers.reset_at(&key, when);
            }
        }
    }

    /// Files a timer that fired during a pause again, for `when`; nothing
    /// if its request or attempt is gone.
    pub(in crate::supervisor) fn rearm(&mut self, expired: Expired, when: Instant) {
        let slot = match expired {
            Expired::Attempt(key) => self
                .entries
                .get_mut(&key.id)
                .filter(|e| e.attempt == key.attempt && e.worker().is_some())
                .map(|e| &mut e.timer),
            Expired::Deadline(id) => self.entries.get_mut(&id).map(|e| &mut e.deadline),
        };
        if let Some(slot) = slot {
            debug_assert!(slot.is_none(), "a fired timer's key was cleared");
            *slot = Some(self.timers.insert_at(expired, when.into()));
        }
    }
}
