//! Messages between workers, confirmations and the cluster queries: the
//! [`Worker`] methods (protocol version 4, capability `messaging`; see
//! `PROTOCOL.md`, section 14).
//!
//! Every message goes through the supervisor, which adds the sender's meta
//! and queues it for each recipient. Delivery is at most once per live
//! recipient, in order per sender. A recipient that does not keep up has
//! a bounded mailbox at the supervisor: the oldest messages are dropped
//! (counted in its [`WorkerCounters::dropped`]).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;

use crate::attempt::Outgoing;
use crate::message::Message;
use crate::protocol::{
    encode_payload, Answer, ClusterInfo, FromWorker, MessageKind, MessageMeta, Query, Recipients, WorkerAddr,
    WorkerCounters,
};
use crate::{Error, Worker};

/// Room left in a frame for a `Publish` envelope around the data beside
/// the group or worker name (which is counted on its own).
const ENVELOPE: usize = 64;

impl Worker {
    /// Sends `msg` (encoded as MessagePack) to every other live worker of
    /// every pool (clustr-node's `emitPublic`). Not to this worker itself.
    ///
    /// Fails with [`Error::TooLarge`] when it does not fit in one frame,
    /// [`Error::QueueFull`] when the writer queue has no room (nothing was
    /// queued: try again later), and [`Error::Disconnected`] when the
    /// link is gone.
    ///
    /// ```no_run
    /// # fn f(worker: &nanny_worker::Worker) -> Result<(), nanny_worker::Error> {
    /// worker.publish_public(&"cache flushed")?;
    /// worker.publish_group("images", &("resize", 1200u32))?;
    /// worker.publish_private("api:01", &"hello")?;
    /// worker.publish_private(7u64, &"hello, worker 7")?;
    /// # Ok(()) }
    /// ```
    pub fn publish_public<T: Serialize + ?Sized>(&self, msg: &T) -> Result<(), Error> {
        self.publish(Recipients::Public, msg)
    }

    /// Sends `msg` to every other live worker of the pool `group` (a
    /// worker's group is its pool; `emitGroup`). Errors as
    /// [`publish_public`](Self::publish_public).
    pub fn publish_group<T: Serialize + ?Sized>(&self, group: &str, msg: &T) -> Result<(), Error> {
        self.publish(Recipients::Group(group.to_owned()), msg)
    }

    /// Sends `msg` to one worker, by id (`7u64`) or stable name
    /// (`"api:01"`: whichever process holds that slot when the supervisor
    /// routes it); `emitPrivate`. A message to no live worker that takes
    /// messages is dropped by the supervisor and counted in this worker's
    /// [`WorkerCounters::undelivered`] ([`stats`](Self::stats)). Errors as
    /// [`publish_public`](Self::publish_public).
    pub fn publish_private<T: Serialize + ?Sized>(
        &self,
        worker: impl Into<WorkerAddr>,
        msg: &T,
    ) -> Result<(), Error> {
        self.publish(Recipients::Private(worker.into()), msg)
    }

    /// Sends a confirmation of `identifier` to every other live worker
    /// (`emitConfirmation`); their [`on_confirmation`](Self::on_confirmation)
    /// listeners count it. Errors as [`publish_public`](Self::publish_public).
    pub fn emit_confirmation(&self, identifier: &str) -> Result<(), Error> {
        self.publish(Recipients::Confirmation, identifier)
    }

    /// Calls `f` for every public message. Several handlers run in
    /// registration order, on the task that reads the socket: keep them
    /// short (spawn a task for anything slow). A panic in `f` is caught
    /// and logged.
    pub fn on_public<F: Fn(Message) + Send + Sync + 'static>(&self, f: F) {
        self.inner.hub.add_handler(MessageKind::Public, Arc::new(f));
    }

    /// Calls `f` for every message to this worker's group. As
    /// [`on_public`](Self::on_public).
    pub fn on_group<F: Fn(Message) + Send + Sync + 'static>(&self, f: F) {
        self.inner.hub.add_handler(MessageKind::Group, Arc::new(f));
    }

    /// Calls `f` for every message to this worker alone. As
    /// [`on_public`](Self::on_public).
    pub fn on_private<F: Fn(Message) + Send + Sync + 'static>(&self, f: F) {
        self.inner.hub.add_handler(MessageKind::Private, Arc::new(f));
    }

    /// Calls `f` each time `n` confirmations of `identifier` have arrived
    /// (from other workers' [`emit_confirmation`](Self::emit_confirmation)),
    /// with the metas of the workers that sent them, in arrival order; then
    /// counts from zero again. Confirmations are counted as they come, so a
    /// worker that confirms twice counts twice (as in clustr-node). An `n`
    /// of 0 counts as 1. Each listener counts on its own.
    ///
    /// ```no_run
    /// # fn f(worker: &nanny_worker::Worker) {
    /// worker.on_confirmation(2, "warmed", |metas| {
    ///     let names: Vec<_> = metas.iter().map(|m| m.name.as_str()).collect();
    ///     println!("warmed by {names:?}");
    /// });
    /// # }
    /// ```
    pub fn on_confirmation<F>(&self, n: usize, identifier: &str, f: F)
    where
        F: Fn(Vec<MessageMeta>) + Send + Sync + 'static,
    {
        self.inner.hub.add_listener(n, identifier.to_owned(), Arc::new(f));
    }

    /// The pools and their live workers (ids, names, pids), as the
    /// supervisor sees them now (`emitClusterInfo`).
    ///
    /// Fails with [`Error::Disconnected`] when the link is gone (or goes
    /// before the answer). (A supervisor that accepts this SDK's protocol
    /// version, 4 or later, always answers.)
    pub async fn cluster_info(&self) -> Result<ClusterInfo, Error> {
        match self.query(Query::ClusterInfo).await? {
            Answer::ClusterInfo(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// This worker's counters, as the supervisor keeps them (messages sent
    /// and received by kind, confirmations, drops…; the seed's `stats`).
    /// Errors as [`cluster_info`](Self::cluster_info).
    pub async fn stats(&self) -> Result<WorkerCounters, Error> {
        match self.query(Query::Stats).await? {
            Answer::Stats(counters) => Ok(counters),
            other => Err(unexpected(&other)),
        }
    }

    fn publish<T: Serialize + ?Sized>(&self, to: Recipients, msg: &T) -> Result<(), Error> {
        let data = encode_payload(msg)?;
        let named = match &to {
            Recipients::Group(g) => g.len(),
            Recipients::Private(WorkerAddr::Name(n)) => n.len(),
            _ => 0,
        };
        let max = self.payload_limit().saturating_sub(named + ENVELOPE);
        if data.len() > max {
            return Err(Error::TooLarge { len: data.len(), max });
        }
        match self.try_send(FromWorker::Publish { to, data }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull),
            Err(TrySendError::Closed(_)) => Err(Error::Disconnected),
        }
    }

    async fn query(&self, query: Query) -> Result<Answer, Error> {
        let hub = &self.inner.hub;
        let (id, answer) = hub.open_query();
        // Forgets the query however this future ends.
        let _forget = Forget(hub, id);
        let closed = self.inner.closed.clone();
        let frame = Outgoing::Frame(FromWorker::Query { id, query });
        tokio::select! {
            sent = self.inner.out.send(frame) => sent.map_err(|_| Error::Disconnected)?,
            () = closed.cancelled() => return Err(Error::Disconnected),
        }
        tokio::select! {
            answer = answer => answer.map_err(|_| Error::Disconnected),
            () = closed.cancelled() => Err(Error::Disconnected),
        }
    }

    /// A message from the session: a confirmation is counted, anything
    /// else goes to its handlers.
    pub(crate) fn on_message(&self, kind: MessageKind, meta: MessageMeta, data: Vec<u8>) {
        if kind == MessageKind::Confirmation {
            return self.on_confirmation_message(&meta, &data);
        }
        let msg = Message::new(kind, meta, data);
        for f in self.inner.hub.handlers(kind) {
            let copy = msg.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(copy))).is_err() {
                tracing::error!(?kind, "a message handler panicked");
            }
        }
    }

    fn on_confirmation_message(&self, meta: &MessageMeta, data: &[u8]) {
        let Ok(identifier) = crate::protocol::decode_payload::<String>(data) else {
            tracing::warn!(
                from = meta.id,
                "a confirmation whose identifier is not a string: ignored"
            );
            return;
        };
        for (f, metas) in self.inner.hub.confirm(&identifier, meta) {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(metas))).is_err() {
                tracing::error!(identifier, "a confirmation listener panicked");
            }
            let done = FromWorker::Confirmed {
                identifier: identifier.clone(),
            };
            if self.try_send(done).is_err() {
                tracing::debug!("writer queue full or closed: a completed confirmation is not counted");
            }
        }
    }

    /// An answer from the session, for the query that waits for it.
    pub(crate) fn on_answer(&self, id: u64, answer: Answer) {
        self.inner.hub.answer(id, answer);
    }
}

fn unexpected(answer: &Answer) -> Error {
    Error::Protocol(format!("an answer of the wrong kind: {answer:?}"))
}

/// Forgets its query when dropped, however the query ended.
struct Forget<'a>(&'a crate::hub::Hub, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.close_query(self.1);
    }
}
