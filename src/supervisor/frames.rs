//! What a worker's link reports to the supervisor task ([`LinkEvent`](link::LinkEvent)):
//! its frames (hello, ready and busy, answers, heartbeats, events,
//! messages…), descriptors, hang-up, exit and passed probe, each handed to
//! the handler that owns it. The worker state machine itself is in
//! `lifecycle`.

use std::time::Instant;

use nanny_worker::protocol::{Capabilities, FromWorker, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

use super::ids::{AttemptKey, RequestId};
use super::state::Input;
use super::task::Task;
use crate::events::{CustomEvent, Event};
use crate::health::{WorkerId, WorkerState};
use crate::worker::link;

impl Task {
    pub(super) fn on_link(&mut self, event: link::LinkEvent) {
        match event {
            link::LinkEvent::Frame(w, frame) => self.on_frame(w, frame),
            link::LinkEvent::Frames(w, frames) => {
                for frame in frames {
                    self.on_frame(w, frame);
                }
            }
            link::LinkEvent::Broken(w, reason) => self.protocol_error(w, reason),
            link::LinkEvent::Fd(w, tag, fd) => self.on_worker_fd(w, tag, fd),
            link::LinkEvent::HungUp(w) => self.on_hung_up(w),
            link::LinkEvent::Exited(w, status) => self.on_exit(w, status),
            link::LinkEvent::ProbePassed(w) => self.on_probe_passed(w),
        }
    }

    fn on_frame(&mut self, id: WorkerId, frame: FromWorker) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let state = w.state;
        // The hello is judged by whether one came, not by the state: a
        // worker told to stop before its hello arrived (a soft kill of a
        // starting pool) still says hello first, and that is no error.
        if !w.greeted {
            match frame {
                // PROTOCOL.md, "Versions": any version in our range, then
                // only the messages the worker declared.
                FromWorker::Hello(h) if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&h.version) => {
                    w.greeted = true;
                    w.caps = Capabilities::from_names(&h.capabilities);
                    w.last_heartbeat = Instant::now();
                    let started = w.pid;
                    self.set_state(id, Input::Hello);
                    if h.pid != started {
                        tracing::warn!(worker = %id, started, hello = h.pid,
                            "the worker's hello names another process than the one started: start it with exec");
                        self.emit(Event::PidMismatch {
                            worker: id,
                            started,
                            hello: h.pid,
                        });
                    }
                }
                FromWorker::Hello(h) => self.protocol_error(
                    id,
                    format!(
                        "worker speaks protocol version {}; this supervisor accepts versions \
                         {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}",
                        h.version
                    ),
                ),
                _ => self.protocol_error(id, "first frame is not a hello".into()),
            }
            return;
        }
        match frame {
            FromWorker::Hello(_) => self.protocol_error(id, "second hello".into()),
            FromWorker::Ready if state == WorkerState::Starting => self.on_said_ready(id),
            FromWorker::Ready => {
                let pool = w.pool;
                w.busy = false;
                if state == WorkerState::Draining {
                    self.drain_progress(id);
                } else if self.set_state(id, Input::Ready) {
                    self.dispatch(pool);
                }
            }
            FromWorker::Busy => {
                w.busy = true;
                self.set_state(id, Input::Busy);
            }
            FromWorker::Response {
                id: req,
                attempt,
                outcome,
                stream,
            } => self.on_response(id, attempt_key(req, attempt), outcome, stream),
            FromWorker::Accepted { id: req, attempt } => self.on_accepted(id, attempt_key(req, attempt)),
            FromWorker::Ack { .. } => {}
            FromWorker::Emit { event, payload } => self.emit(Event::Custom(CustomEvent {
                worker: id,
                name: event,
                payload,
            })),
            FromWorker::Heartbeat(hb) => {
                w.last_heartbeat = Instant::now();
                w.heartbeat = Some(hb);
                if std::mem::take(&mut w.conns.stalled) {
                    self.sync_balancer(id);
                }
                self.report_health(id);
                self.check_health(id);
            }
            FromWorker::Listening { on } => {
                self.on_listening(id, on);
                let pool = self.workers[&id].pool;
                self.end_spread_if_settled(pool, false, false);
            }
            FromWorker::ConnectionTaken { id: conn, attempt } => {
                self.on_connection_answer(id, conn, attempt, true)
            }
            FromWorker::ConnectionBounced { id: conn, attempt } => {
                self.on_connection_answer(id, conn, attempt, false)
            }
            FromWorker::ConnectionClosed { id: conn } => self.on_connection_closed(id, conn),
            FromWorker::Publish { to, data } => self.on_publish(id, to, data),
            FromWorker::Query { id: query, query: q } => self.on_query(id, query, q),
            FromWorker::Confirmed { .. } => self.on_confirmed(id),
            FromWorker::Ask {
                id: question,
                question: q,
            } => self.on_ask(id, question, q),
            FromWorker::Closing { code } => self.on_closing(id, code),
            _ => {}
        }
    }
}

fn attempt_key(id: uuid::Uuid, attempt: u32) -> AttemptKey {
    AttemptKey {
        id: RequestId(id),
        attempt,
    }
}
