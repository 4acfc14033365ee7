//! [`Worker::serve`]: one task per request that awaits, drain on soft kill.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::attempt::Attempt;
use crate::request::answer_auto;
use crate::worker::{lock, ToServe};
use crate::{kind, Error, HandlerError, Request, Worker};

impl Worker {
    /// Serves requests until the supervisor stops this worker, running
    /// `handler` for each request, concurrently: on its own task (on a
    /// current-thread runtime, only once it awaits something: until then it
    /// runs in `serve`'s own loop, which costs no task for a handler that
    /// answers at once).
    ///
    /// Call [`ready`](Self::ready) first (before or after starting `serve`):
    /// the supervisor sends nothing until then. Requests that arrived before
    /// `serve` started are served too.
    ///
    /// A handler answers with [`Request::respond`] or [`Request::fail`]. If
    /// it does not, the SDK answers for it with a [`RemoteError`](crate::RemoteError):
    ///
    /// | the handler…                          | kind                   | message           |
    /// |---------------------------------------|------------------------|-------------------|
    /// | returns `Err(e)`                      | [`kind::HANDLER`]      | `e.to_string()`   |
    /// | panics                                | [`kind::PANIC`]        | the panic message |
    /// | returns `Ok(())` and drops the request| [`kind::DROPPED`]      | fixed text        |
    ///
    /// A handler may move its request to another task and return `Ok(())`;
    /// the request is then answered when that task answers it or drops it.
    /// Nothing is sent for an attempt the supervisor cancelled.
    ///
    /// # Returns
    ///
    /// * `Ok(())` after a soft kill, once the [`on_soft_kill`](Self::on_soft_kill)
    ///   hook (if any) and every handler have finished, every request is
    ///   answered (also those a handler handed to another task, and those
    ///   whose attachment was still on its way), every response stream
    ///   ([`Request::respond_stream`]) is pumped to its end, and the answers
    ///   are written to the socket. The process should then exit
    ///   with status 0. After an `Exit { code }` order (another member's
    ///   [`kill`](Self::kill)) `serve` does not return: at the same point
    ///   it exits the process with `code`.
    /// * `Err(`[`Error::Disconnected`]`)` when the supervisor's end of the
    ///   socket closes; in-flight handlers are aborted. Exit then.
    /// * `Err(`[`Error::HardKilled`]`)` after a hard-kill notice (SIGKILL
    ///   follows); in-flight handlers are aborted.
    /// * `Err(`[`Error::Protocol`]`)` / `Err(`[`Error::Io`]`)` when the link
    ///   broke on a bad frame or an I/O error.
    /// * `Err(`[`Error::AlreadyServing`]`)` if another `serve` on this worker
    ///   is running.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the in-flight handlers (their requests are
    /// answered with kind [`kind::ABORTED`]). Requests not yet started stay
    /// queued for the next call to `serve`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(worker: nanny_worker::Worker) -> Result<(), nanny_worker::Error> {
    /// worker.ready();
    /// worker
    ///     .serve(|req| async move {
    ///         let name: String = req.data()?;
    ///         req.respond(&format!("hello, {name}"))?;
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn serve<H, Fut>(&self, handler: H) -> Result<(), Error>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let taken = lock(&self.inner.serve_queue).take();
        let mut serving = Serving {
            worker: self,
            queue: taken.ok_or(Error::AlreadyServing)?,
        };
        let handler = Arc::new(handler);
        let mut tasks = JoinSet::new();
        let mut draining = false;
        let mut idle = self.inner.idle.clone();
        // On a current-thread runtime a spawned handler would run on this
        // same thread anyway, after this loop yields: its first poll runs
        // here instead (see `start_inline`). On a multi-thread runtime
        // handlers start on their own tasks, so that synchronous work in
        // one does not hold up the others.
        let inline = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        // The box of the last request that finished inline, for the next.
        let mut spare = None;
        loop {
            tokio::select! {
                // Take what has arrived before deciding the drain is over.
                biased;
                msg = serving.queue.recv() => match msg {
                    Some(ToServe::Request(parts)) => {
                        let req = Request::from_parts(self.clone(), parts);
                        if req.is_cancelled() {
                            continue; // cancelled while queued: dropping it answers nothing
                        }
                        let watch = Watch::new(&req);
                        let handler = Arc::clone(&handler);
                        let run = AssertUnwindSafe(async move { handler(req).await }).catch_unwind();
                        let task = async move { watch.finish(run.await) };
                        if inline {
                            start_inline(&mut tasks, &mut spare, task);
                        } else {
                            tasks.spawn(task);
                        }
                    }
                    Some(ToServe::SoftKill) => draining = true,
                    Some(ToServe::HardKill) => return Err(Error::HardKilled),
                    Some(ToServe::Closed(reason)) => return Err(reason),
                    None => return Err(Error::Disconnected),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = drained(&self.inner.soft_done, &mut idle), if draining && tasks.is_empty() => {
                    self.flush().await;
                    if let Some(code) = self.inner.asks.exit_code() {
                        std::process::exit(code); // another member's kill (see `asks`)
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// Polls a request's task once, here; only if it is not finished then
/// (the handler awaits something) does it become a task of its own.
///
/// Most handlers answer without awaiting anything, and a task spawn per
/// request was a tenth of a worker's instructions at 256 outstanding
/// (BENCHMARKS.md, "The hot path"). The first poll uses a waker that does
/// nothing: a future that returns `Pending` is polled again by its task,
/// with that task's waker, before anything could have woken it.
///
/// The future is polled in a box, since one that is not finished moves to
/// its task where it was polled; the box of one that finished is kept in
/// `spare` for the next request (`Pin::set` drops the finished future in
/// place): no allocation per request for handlers that answer at once.
fn start_inline<F>(tasks: &mut JoinSet<()>, spare: &mut Option<Pin<Box<F>>>, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut boxed = match spare.take() {
        Some(mut boxed) => {
            boxed.set(task);
            boxed
        }
        None => Box::pin(task),
    };
    let mut cx = Context::from_waker(Waker::noop());
    if boxed.as_mut().poll(&mut cx).is_pending() {
        tasks.spawn(boxed);
    } else {
        *spare = Some(boxed);
    }
}

/// A running `serve`'s hold on the session's queue: put back when `serve`
/// ends, for the next call.
struct Serving<'a> {
    worker: &'a Worker,
    queue: mpsc::Receiver<ToServe>,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let (_, empty) = mpsc::channel(1);
        let queue = std::mem::replace(&mut self.queue, empty);
        *lock(&self.worker.inner.serve_queue) = Some(queue);
    }
}

/// Resolves once the soft-kill hook is done and nothing is in flight
/// (the session's `idle`): no attempt unfinished, including requests a
/// handler moved to another task and response streams still being
/// written, and no request frame waiting for its attachment.
async fn drained(soft_done: &CancellationToken, idle: &mut watch::Receiver<bool>) {
    soft_done.cancelled().await;
    // Err only if the session is gone; `Closed` then ends `serve` anyway.
    let _ = idle.wait_for(|&idle| idle).await;
}

/// Answers, on behalf of a handler, a request the handler did not answer.
/// Lives in the request's task.
struct Watch {
    attempt: Arc<Attempt>,
    finished: bool,
}

impl Watch {
    fn new(req: &Request) -> Self {
        req.state.watch();
        Self {
            attempt: Arc::clone(&req.state),
            finished: false,
        }
    }

    fn finish(mut self, result: std::thread::Result<Result<(), HandlerError>>) {
        self.finished = true;
        match result {
            Ok(Ok(())) => {
                // Still alive elsewhere: its own drop will answer if need be.
                if self.attempt.release() {
                    answer_auto(
                        &self.attempt,
                        kind::DROPPED,
                        "the handler returned without answering",
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, id = %self.attempt.key.id, "handler failed");
                // Answer first: a concurrent drop elsewhere then finds it answered.
                answer_auto(&self.attempt, kind::HANDLER, e.to_string());
                self.attempt.release();
            }
            Err(panic) => {
                answer_auto(&self.attempt, kind::PANIC, panic_message(&*panic));
                self.attempt.release();
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The task was aborted before the handler finished. The attempt
        // stays watched, so the request's own drop (before or after this)
        // stays silent.
        if !self.finished {
            answer_auto(&self.attempt, kind::ABORTED, "the handler was aborted");
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("the handler panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("the handler panicked: {s}")
    } else {
        "the handler panicked".to_owned()
    }
}
