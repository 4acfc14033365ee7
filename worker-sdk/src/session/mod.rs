//! The session task: the one owner of a worker's in-flight table and
//! attachment matcher ([`InFlight`]), as the supervisor's task owns its
//! state. It reads the framed socket and the fd channel, registers
//! attempts and hands them to `serve`, applies cancels, answers what it
//! must itself (attachment errors), sends heartbeats, and hears from the
//! attempts when they are over ([`Done`]). Nothing else touches the tables.
//!
//! # Bounds and overflow
//!
//! * At [`MAX_IN_FLIGHT`] attempts the session stops reading (both sockets)
//!   until one finishes: the supervisor's writes then back up, never a
//!   frame dropped.
//! * Before it registers an attempt it reserves the attempt's writer slots
//!   (waiting for room: backpressure again), so the attempt's answer can be
//!   queued without waiting and is never dropped.
//! * The queue to `serve` holds at most [`MAX_IN_FLIGHT`] requests (each is
//!   in the table) and three notices (soft kill, hard kill, closed, each
//!   sent once), so its bound is never reached.
//! * A heartbeat that finds the writer queue full is skipped (the next
//!   pulse sends a fresh one).
//!
//! Balanced connections (offers on the fd channel, `Listening`,
//! `ConnectionClosed`) are handled in `offers.rs`, outside the tables; the
//! attachments (request frames that wait for their descriptor, and the
//! fd channel's messages) in `fds`.

mod fds;

use self::fds::readable;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::attempt::{Done, Outgoing, Slots, Ticket};
use crate::event::Event;
use crate::inflight::{Cancelled, InFlight, MAX_IN_FLIGHT};
use crate::matcher::Waiting;
use crate::outbox;
use crate::protocol::{
    AttemptKey, FrameReader, FromWorker, Heartbeat, Outcome, RemoteError, RequestFrame, ToWorker,
};
use crate::socket::Attachment;
use crate::worker::{Control, ToServe};
use crate::{kind, Error, Worker};

pub(crate) type Reader = FrameReader<crate::protocol::quiet::QuietRead, ToWorker>;

/// The most frames handled in one turn of the session's loop beyond the
/// first: enough to take a full read buffer of small requests at once, few
/// enough that finished attempts, control questions and heartbeats wait at
/// most that long.
const READ_BATCH: usize = 64;

/// Capacity of the queue from the session to `serve` (see the module docs).
pub(crate) const SERVE_QUEUE: usize = MAX_IN_FLIGHT + 3;

/// The session task's state.
pub(crate) struct Session {
    pub(crate) worker: Worker,
    pub(crate) inflight: InFlight,
    pub(crate) reader: Reader,
    pub(crate) done_tx: outbox::Sender<Done>,
    pub(crate) done_rx: outbox::Receiver<Done>,
    /// The last batch taken from `done_rx` (kept for its storage).
    pub(crate) finished: VecDeque<Done>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) to_serve: mpsc::Sender<ToServe>,
    pub(crate) term: Option<tokio::signal::unix::Signal>,
    pub(crate) soft_killed: bool,
    pub(crate) hard_killed: bool,
    pub(crate) started: Instant,
    /// The low-latency mode's spinner, touched by every frame read.
    pub(crate) spin: Option<std::sync::Arc<crate::spin::Spin>>,
}

impl Session {
    /// Runs until the link closes; then tells `serve` why.
    pub(crate) async fn run(mut self) {
        let closed = self.worker.inner.closed.clone();
        let fd = self.worker.inner.fd_channel.clone();
        let mut fd_open = fd.is_some();
        let conns = self.worker.inner.conns.clone();
        let mut pulse = tokio::time::interval(self.worker.inner.settings.pulse);
        pulse.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Made once, not at every turn of the select: a fresh cancellation
        // future and `Notified` per turn cost about 1 800 instructions per
        // request on an idle link (BENCHMARKS.md, "Quiet sockets").
        let mut cancelled = std::pin::pin!(closed.cancelled());
        let mut notices = std::pin::pin!(conns.notified());
        let reason = loop {
            let room = self.inflight.has_room();
            tokio::select! {
                // Finished attempts first: they make room.
                biased;
                true = self.done_rx.take(&mut self.finished) => self.on_finished(),
                () = &mut cancelled => break Error::Disconnected,
                Some(ctl) = self.control.recv() => self.on_control(ctl),
                () = &mut notices => {
                    notices.set(conns.notified());
                    self.flush_notices().await;
                }
                // `FramedRead::next` is cancel safe: no bytes are lost to the select.
                next = self.reader.next(), if room => {
                    if let Err(reason) = self.on_read(next).await {
                        break reason;
                    }
                    // Then the frames already in the read buffer, in this
                    // same turn (one turn of this select per frame was a
                    // tenth of a worker's instructions under load).
                    if let Err(reason) = self.read_buffered().await {
                        break reason;
                    }
                }
                ready = readable(fd.as_deref()), if room && fd_open => {
                    fd_open = match ready {
                        Ok(()) => self.take_fd_messages(false).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "the fd channel failed");
                            false
                        }
                    };
                }
                Some(()) = async { self.term.as_mut()?.recv().await } => {
                    tracing::debug!("SIGTERM: soft kill");
                    self.term = None; // once is enough; a second SIGTERM is ignored
                    self.soft_kill().await;
                }
                scheduled = pulse.tick() => self.heartbeat(scheduled),
            }
        };
        match &reason {
            Error::Disconnected => tracing::debug!("supervisor link closed"),
            other => tracing::warn!(error = %other, "supervisor link failed"),
        }
        closed.cancel();
        self.inflight.cancel_all();
        self.stop_listening();
        let _ = self.to_serve.try_send(ToServe::Closed(reason));
    }

    /// What one read from the socket gave: a frame, its end, or an error.
    async fn on_read(&mut self, next: Option<std::io::Result<ToWorker>>) -> Result<(), Error> {
        match next {
            None => Err(Error::Disconnected),
            Some(Err(e)) => Err(read_error(e)),
            Some(Ok(frame)) => self.on_frame(frame).await,
        }
    }

    /// Handles up to [`READ_BATCH`] more frames that need no wait to be
    /// read (whole in the buffer, or in the socket), while there is room.
    async fn read_buffered(&mut self) -> Result<(), Error> {
        for _ in 0..READ_BATCH {
            if !self.inflight.has_room() {
                break;
            }
            // Cancel safe (`FramedRead` keeps a partial frame buffered);
            // the waker this poll leaves behind is replaced by the select's
            // next poll of the same reader.
            match self.reader.next().now_or_never() {
                Some(next) => self.on_read(next).await?,
                None => break,
            }
        }
        Ok(())
    }

    /// Attempts that are over leave the table.
    fn on_finished(&mut self) {
        self.inflight.done(self.finished.drain(..).map(|Done(key)| key));
        self.done_rx.idle(&mut self.finished);
    }

    fn on_control(&mut self, ctl: Control) {
        match ctl {
            Control::Requests(reply) => drop(reply.send(self.inflight.snapshot())),
            #[cfg(test)]
            Control::Waiting(reply) => drop(reply.send(self.inflight.waiting())),
        }
    }

    async fn on_frame(&mut self, frame: ToWorker) -> Result<(), Error> {
        if let Some(spin) = &self.spin {
            spin.touch();
        }
        match frame {
            ToWorker::Hello(_) => return Err(Error::Protocol("a second hello".into())),
            ToWorker::Request(frame) if frame.attachment.is_some() => self.attached_frame(frame).await,
            ToWorker::Request(frame) => self.plain_request(frame).await,
            ToWorker::Cancel { id, attempt } => self.cancel(AttemptKey::new(id, attempt)),
            ToWorker::Broadcast { event, payload } => {
                self.worker.dispatch_broadcast(Event::new(event, payload))
            }
            ToWorker::SoftKill => self.soft_kill().await,
            ToWorker::Drain => self.stop_listening(),
            ToWorker::Message { kind, meta, data } => self.worker.on_message(kind, meta, data),
            ToWorker::QueryAnswer { id, answer } => self.worker.on_answer(id, answer),
            ToWorker::Answer { id, outcome } => self.worker.inner.asks.resolve(id, outcome),
            ToWorker::Exit { code } => {
                self.worker.exit_ordered(code);
                self.soft_kill().await;
            }
            ToWorker::HardKill => {
                self.stop_listening();
                self.worker.run_hard_kill_hook();
                self.inflight.cancel_all();
                if !std::mem::replace(&mut self.hard_killed, true) {
                    let _ = self.to_serve.try_send(ToServe::HardKill);
                }
            }
        }
        Ok(())
    }

    /// Reserves an attempt's slots: one in the writer queue for its answer
    /// and one more for an early `Accepted` if `attached` (waiting for
    /// room), and one in the `Done` queue (always free: it has a slot per
    /// possible attempt). `None` when the link is gone.
    async fn reserve(&mut self, key: AttemptKey, attached: bool) -> Option<Slots> {
        let slots = 1 + usize::from(attached);
        let out = &self.worker.inner.out;
        // Room is the rule: take it without a select when there is.
        let out = match out.try_reserve(slots) {
            Ok(reservation) => reservation,
            Err(_) => {
                let closed = &self.worker.inner.closed;
                tokio::select! {
                    reservation = out.reserve(slots) => reservation?,
                    () = closed.cancelled() => return None,
                }
            }
        };
        let done = self.done_tx.try_reserve(1).ok()?;
        Some(Slots {
            out,
            attached,
            ticket: Ticket::new(key, done),
        })
    }

    /// Registers an attempt and hands it to `serve`; with an attachment
    /// that could not be converted, answers it with an error instead.
    async fn register(&mut self, frame: RequestFrame, attachment: Option<Result<Attachment, String>>) {
        let key = frame.key();
        if self.inflight.contains(key) {
            tracing::warn!(id = %key.id, attempt = key.attempt, "ignoring a duplicate request attempt");
            return;
        }
        let Some(slots) = self.reserve(key, attachment.is_some()).await else {
            return;
        };
        let (attachment, unusable) = match attachment {
            Some(Ok(a)) => (Some(a), None),
            Some(Err(why)) => (None, Some(why)),
            None => (None, None),
        };
        let limit = self.worker.payload_limit();
        let parts = self.inflight.register(frame, slots, limit, attachment);
        match unusable {
            // Accepted goes out with the answer: the worker has the descriptor.
            Some(why) => {
                let err = RemoteError::new(kind::ATTACHMENT, why);
                let _ = parts.attempt.answer(Outcome::Err(err), false, false);
            }
            None => {
                // Never full: see the module docs.
                let _ = self.to_serve.try_send(ToServe::Request(parts));
            }
        }
    }

    async fn plain_request(&mut self, frame: RequestFrame) {
        self.register(frame, None).await;
    }

    fn cancel(&mut self, key: AttemptKey) {
        if let Cancelled::Waiting(Waiting::Frame(_)) = self.inflight.cancel(key) {
            tracing::debug!(id = %key.id, attempt = key.attempt, "cancelled while waiting for its attachment");
        }
    }

    async fn soft_kill(&mut self) {
        if std::mem::replace(&mut self.soft_killed, true) {
            return;
        }
        // Offers read from here on are bounced.
        self.stop_listening();
        // A request sent inline on the fd channel before this frame is in
        // the channel by now: take it, so the drain waits for it.
        self.take_fd_messages(true).await;
        self.worker.start_soft_kill();
        let _ = self.to_serve.try_send(ToServe::SoftKill);
    }

    /// An [`kind::ATTACHMENT`] error answer for an attempt that is not in
    /// the in-flight table.
    async fn send_error(&mut self, key: AttemptKey, message: &str) {
        let frame = FromWorker::Response {
            id: key.id,
            attempt: key.attempt,
            outcome: Outcome::Err(RemoteError::new(kind::ATTACHMENT, message)),
            stream: false,
        };
        let _ = self.worker.inner.out.send(Outgoing::Frame(frame)).await;
    }

    fn heartbeat(&mut self, scheduled: tokio::time::Instant) {
        let lag = tokio::time::Instant::now().saturating_duration_since(scheduled);
        let beat = Heartbeat {
            rss_bytes: rss_bytes(),
            in_flight: self.inflight.unanswered(),
            lag_us: micros(lag),
            uptime_ms: self.started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
            served: self.inflight.served(),
            runtime_memory: Default::default(),
        };
        if self
            .worker
            .inner
            .out
            .try_send(Outgoing::Frame(FromWorker::Heartbeat(beat)))
            .is_err()
        {
            tracing::debug!("writer queue full or closed: heartbeat skipped");
        }
    }
}

pub(crate) fn read_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidData => Error::Protocol(e.to_string()),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Error::Disconnected,
        _ => Error::Io(e),
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// Resident set size, from the second field of `/proc/self/statm`.
fn rss_bytes() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let page = *PAGE.get_or_init(
        || match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => 4096,
        },
    );
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
    pages.unwrap_or(0).saturating_mul(page)
}
