//! What comes back from a worker for a request: `Accepted` for its
//! attachment, the answer, and a response stream's descriptor, matched with
//! its answer in whichever order the two arrive. An answer for anything but
//! the current attempt on that worker is late: counted and dropped.

use std::os::fd::OwnedFd;

use nanny_worker::protocol::{FdTag, Outcome, FD_KIND_RESPONSE_STREAM};

use super::ids::{AttemptKey, RequestId};
use super::task::Task;
use super::Response;
use crate::attach::Source;
use crate::error::Error;
use crate::health::WorkerId;

/// Response-stream descriptors one worker may have sent ahead of their
/// answers; more is a protocol error.
const MAX_UNMATCHED_FDS: usize = 1024;

impl Task {
    /// The worker took the attempt's attachment: it is the worker's now. A
    /// stream starts flowing.
    pub(super) fn on_accepted(&mut self, worker: WorkerId, key: AttemptKey) {
        let Some(e) = self.ledger.current_mut(worker, key) else {
            return;
        };
        let Some(att) = e.attachment.as_mut() else {
            return;
        };
        att.accepted = true;
        match (att.source.take(), att.local.take()) {
            (Some(Source::Stream(reader)), Some(local)) => {
                let kill = self.kill.clone();
                self.tracker.spawn(async move {
                    let local = match local
                        .set_nonblocking(true)
                        .and_then(|()| tokio::net::UnixStream::from_std(local))
                    {
                        Ok(l) => l,
                        Err(error) => {
                            tracing::warn!(%error, "cannot start a stream attachment");
                            return;
                        }
                    };
                    tokio::select! {
                        // Ends early, too, when the worker closes its end.
                        result = nanny_worker::stream::pump_socket(reader, local) => {
                            if let Err(error) = result {
                                // The worker's side reports the truncation.
                                tracing::debug!(%error, "stream attachment ended early");
                            }
                        }
                        () = kill.cancelled() => {}
                    }
                });
            }
            // A socket: our copy closes once this batch of events is handled
            // (so after an answer that came with `Accepted` is delivered); the
            // worker holds the only one then.
            (Some(source), _) => self.released.push(source),
            (None, local) => drop(local),
        }
    }

    pub(super) fn on_response(&mut self, worker: WorkerId, key: AttemptKey, outcome: Outcome, stream: bool) {
        let current = self
            .ledger
            .current_mut(worker, key)
            .is_some_and(|e| e.parked.is_none());
        if !current {
            let pool = self.workers.get(&worker).map(|w| w.pool);
            self.tally.add(pool, super::tally::Count::LateAnswer);
            if let Some(w) = self.workers.get_mut(&worker) {
                w.stream_fds.remove(&key); // closes it
            }
            return;
        }
        // A descriptor the worker sent for this attempt leaves the table
        // with its answer, whether the answer takes it or not (then it
        // closes here): one left behind stayed open until the worker
        // exited, one more per request of a worker that sends them unasked.
        let fd = self
            .workers
            .get_mut(&worker)
            .and_then(|w| w.stream_fds.remove(&key));
        let data = match outcome {
            Outcome::Ok(data) => data.into_vec(),
            Outcome::Err(e) => {
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.reported.count(&e.kind);
                }
                self.finish_answer(worker, key.id, Err(Error::Handler(e)));
                return;
            }
        };
        if !stream {
            self.finish_answer(worker, key.id, Ok((data, None)));
            return;
        }
        match fd {
            Some(fd) => self.finish_answer(worker, key.id, Ok((data, Some(fd)))),
            // The stream's descriptor is on its way on the other channel.
            None => {
                if let Some(e) = self.ledger.current_mut(worker, key) {
                    e.parked = Some(data);
                }
            }
        }
    }

    /// A descriptor from a worker: a response stream.
    pub(super) fn on_worker_fd(&mut self, worker: WorkerId, tag: FdTag, fd: OwnedFd) {
        if tag.kind != FD_KIND_RESPONSE_STREAM {
            self.protocol_error(worker, format!("fd channel message of kind {}", tag.kind));
            return;
        }
        let key = AttemptKey {
            id: RequestId(tag.id),
            attempt: tag.attempt,
        };
        // Late: nobody waits for this stream; `fd` closes here.
        let Some(e) = self.ledger.current_mut(worker, key) else {
            return;
        };
        match e.parked.take() {
            Some(data) => self.finish_answer(worker, key.id, Ok((data, Some(fd)))),
            None => {
                let Some(w) = self.workers.get_mut(&worker) else {
                    return;
                };
                if w.stream_fds.len() >= MAX_UNMATCHED_FDS {
                    self.protocol_error(worker, "too many response streams without answers".into());
                    return;
                }
                w.stream_fds.insert(key, fd);
            }
        }
    }

    fn finish_answer(
        &mut self,
        worker: WorkerId,
        id: RequestId,
        answer: Result<(Vec<u8>, Option<OwnedFd>), Error>,
    ) {
        let Some(e) = self.ledger.get(id) else {
            return;
        };
        let result = match answer {
            Ok((data, fd)) => match fd.map(crate::attach::response_stream).transpose() {
                Ok(stream) => Ok(Response {
                    id: id.0,
                    created_at: e.created_at,
                    worker,
                    attempt: e.attempt,
                    data,
                    stream,
                    host: None,
                }),
                Err(err) => {
                    self.resolve(id, Err(Error::Attachment(err.to_string())));
                    return;
                }
            },
            Err(err) => Err(err),
        };
        if let Some(w) = self.workers.get_mut(&worker) {
            w.served += 1;
        }
        self.resolve(id, result);
        self.after_served(worker);
    }
}
