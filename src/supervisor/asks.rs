//! Workers' questions on the supervisor task (protocol version 4; the
//! public contract is in [`crate::asks`]): `Ask` frames are answered with
//! one `Answer` each, and `Closing` takes a worker that ends itself out of
//! the router.
//!
//! The task never waits for an answer. What answers at once (a refusal, a
//! kill, a restart under way) is sent inline through the worker's frame
//! queue; what takes time (a handler, spawned workers becoming ready) runs
//! on a task of the tracker that holds a clone of that queue, one of the
//! worker's [`MAX_ASKS_IN_FLIGHT`] permits, and the `kill` token, so it
//! ends at shutdown. The cluster operations (kill, spawn, shutdown) are in
//! `members`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use nanny_worker::protocol::{ask_kind, max_payload_len, Outcome, Question, RemoteError, ToWorker};
use serde_bytes::ByteBuf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::command::Manage;
use super::state::Input;
use super::task::{Task, Timer};
use crate::asks::{AskRequest, MAX_ASKS_IN_FLIGHT};
use crate::health::WorkerId;
use crate::worker::link::Outgoing;
use crate::WorkerRef;

/// What an answer is: MessagePack, or a typed refusal.
pub(super) type Answer = Result<Vec<u8>, RemoteError>;

/// What the task keeps per worker about its questions.
#[derive(Debug)]
pub(super) struct WorkerAsks {
    /// Questions running off the task (handlers, spawns waiting for ready).
    permits: Arc<Semaphore>,
    /// The code it was told to exit with (a kill) or said it exits with
    /// (`close`); its exit is then judged by the code, as any unplanned one.
    pub(super) ending: Option<i32>,
}

impl Default for WorkerAsks {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(MAX_ASKS_IN_FLIGHT)),
            ending: None,
        }
    }
}

/// A typed refusal.
pub(super) fn refusal(kind: &str, message: impl Into<String>) -> RemoteError {
    RemoteError::new(kind, message)
}

/// The MessagePack of `value` (a unit answer: `nil`).
pub(super) fn encoded<T: serde::Serialize>(value: &T) -> Answer {
    nanny_worker::protocol::encode_payload(value).map_err(|e| refusal(ask_kind::FAILED, e.to_string()))
}

/// Where an answer computed off the task goes.
pub(super) struct Asker {
    frames: crate::worker::outbox::Sender<Outgoing>,
    id: u64,
    max: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Asker {
    /// Sends the answer, waiting for room (the worker's reading paces it).
    pub(super) async fn answer(self, answer: Answer) {
        let frame = ToWorker::Answer {
            id: self.id,
            outcome: outcome(answer, self.max),
        };
        let _ = self.frames.send(Outgoing::Frame(frame)).await; // gone: nobody to tell
    }
}

fn outcome(answer: Answer, max: usize) -> Outcome {
    match answer {
        Ok(bytes) if bytes.len() <= max => Outcome::Ok(ByteBuf::from(bytes)),
        Ok(bytes) => Outcome::Err(refusal(
            ask_kind::FAILED,
            format!(
                "the answer's {} bytes exceed the payload limit of {max}",
                bytes.len()
            ),
        )),
        Err(e) => Outcome::Err(e),
    }
}

impl Task {
    /// A worker's question.
    pub(super) fn on_ask(&mut self, worker: WorkerId, id: u64, question: Question) {
        match question {
            Question::Event { event, payload } => self.ask_handler(worker, id, event, payload),
            Question::Kill { target, code } => {
                let answer = self.kill_member(worker, &target, code);
                self.answer(worker, id, answer);
            }
            Question::Spawn {
                pool,
                count,
                respawn,
                args,
                cpus,
            } => {
                let spawn = super::members::Spawn {
                    pool,
                    count,
                    respawn,
                    args,
                    cpus,
                };
                self.spawn_for(worker, id, spawn)
            }
            Question::RestartMe => self.restart_for(worker, id),
            other => {
                let why = format!("a question this supervisor does not know: {other:?}");
                self.answer(worker, id, Err(refusal(ask_kind::UNSUPPORTED, why)));
            }
        }
    }

    /// Answers at once, through the worker's frame queue.
    pub(super) fn answer(&mut self, worker: WorkerId, id: u64, answer: Answer) {
        let outcome = outcome(answer, max_payload_len(self.cfg.max_frame_len));
        self.send_frame(worker, ToWorker::Answer { id, outcome });
    }

    /// Where to answer `worker`'s question `id` later, holding one of its
    /// permits; `None` (answered `busy` already) when it has none left.
    pub(super) fn asker(&mut self, worker: WorkerId, id: u64) -> Option<Asker> {
        let w = self.workers.get(&worker)?;
        let Ok(permit) = Arc::clone(&w.asks.permits).try_acquire_owned() else {
            let why = format!("{} has {MAX_ASKS_IN_FLIGHT} questions in flight", w.name);
            self.answer(worker, id, Err(refusal(ask_kind::BUSY, why)));
            return None;
        };
        Some(Asker {
            frames: w.link.frames.clone(),
            id,
            max: max_payload_len(self.cfg.max_frame_len),
            _permit: Some(permit),
        })
    }

    /// Runs the handler of `event` off the task; its answer goes straight
    /// to the worker's frame queue.
    fn ask_handler(&mut self, worker: WorkerId, id: u64, event: String, payload: Vec<u8>) {
        let Some(handler) = self.cfg.asks.handler(&event) else {
            let why = format!("no handler for {event:?}");
            return self.answer(worker, id, Err(refusal(ask_kind::NO_HANDLER, why)));
        };
        let Some(asker) = self.asker(worker, id) else {
            return;
        };
        let w = &self.workers[&worker];
        let request = AskRequest {
            worker,
            name: w.name.clone(),
            pool: self.pools[w.pool].cfg.name.clone(),
            pid: w.pid,
            event,
            payload,
        };
        let kill = self.kill.clone();
        self.tracker.spawn(async move {
            // The call itself inside the guard: a handler may panic before
            // its first await.
            let run = AssertUnwindSafe(async move { handler(request).await }).catch_unwind();
            let answer = match kill.run_until_cancelled(run).await {
                None => return, // shutdown
                Some(Ok(Ok(bytes))) => Ok(bytes),
                Some(Ok(Err(why))) => Err(refusal(ask_kind::HANDLER, why)),
                Some(Err(panic)) => Err(refusal(ask_kind::PANIC, panic_message(&*panic))),
            };
            kill.run_until_cancelled(asker.answer(answer)).await;
        });
    }

    /// `restart_me`: the worker's own make-before-break restart, through
    /// `restart_worker`'s path. Answered once admitted; a later failure
    /// (the successor did not start) is logged, and the worker serves on.
    fn restart_for(&mut self, worker: WorkerId, id: u64) {
        let (reply, mut done) = tokio::sync::oneshot::channel();
        self.on_manage(Manage::Restart(WorkerRef::Id(worker)), reply);
        let under_way = match done.try_recv() {
            Ok(Err(e)) => return self.answer(worker, id, Err(refusal(ask_kind::FAILED, e.to_string()))),
            Ok(Ok(_)) => false,
            Err(_) => true,
        };
        let answer = encoded(&());
        self.answer(worker, id, answer);
        if !under_way {
            return;
        }
        self.tracker.spawn(async move {
            if let Ok(Err(e)) = done.await {
                tracing::warn!(%worker, error = %e, "restart_me failed: the worker serves on");
            }
        });
    }

    /// `close(code)`: the worker ends itself. It takes no new work; its
    /// exit, due at once, is judged by `code`; one that lingers is killed
    /// after its pool's `force_stop_delay`.
    pub(super) fn on_closing(&mut self, worker: WorkerId, code: i32) {
        tracing::info!(%worker, code, "worker closing itself");
        self.ending(worker, code);
    }

    /// `worker` is to exit with `code` by itself: out of the router, a
    /// forced stop armed, and no stop reason, so its exit is judged by the
    /// restart policy as any other.
    pub(super) fn ending(&mut self, worker: WorkerId, code: i32) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.asks.ending = Some(code);
        let delay = (self.pools[w.pool].settings.force_stop_delay).filter(|_| !w.debugging);
        let timer = w.timer.take();
        self.cancel_timer(timer);
        if let Some(delay) = delay {
            let key = self.timers.insert(Timer::ForceKill(worker), delay);
            if let Some(w) = self.workers.get_mut(&worker) {
                w.timer = Some(key);
            }
        }
        self.set_state(worker, Input::Stop);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("the handler panicked: {s}"),
        (_, Some(s)) => format!("the handler panicked: {s}"),
        _ => "the handler panicked".to_owned(),
    }
}
