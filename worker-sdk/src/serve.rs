//! [`Worker::serve`]: one task per request, drain on soft kill.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::inflight::Key;
use crate::request::{DROPPED, WATCHED};
use crate::worker::Incoming;
use crate::{kind, Error, HandlerError, Request, Worker};

impl Worker {
    /// Serves requests until the supervisor stops this worker, running
    /// `handler` on its own task for each request, concurrently.
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
    ///   with status 0.
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
        let mut incoming = self
            .inner
            .incoming
            .try_lock()
            .map_err(|_| Error::AlreadyServing)?;
        let handler = Arc::new(handler);
        let mut tasks = JoinSet::new();
        let mut draining = false;
        let mut outstanding = self.inner.outstanding.subscribe();
        loop {
            tokio::select! {
                // Take what has arrived before deciding the drain is over.
                biased;
                msg = incoming.recv() => match msg {
                    // Cancelled while queued: dropping it answers nothing.
                    Some(Incoming::Request(req)) if req.is_cancelled() => drop(req),
                    Some(Incoming::Request(req)) => {
                        let watch = Watch::new(self.clone(), &req);
                        let handler = Arc::clone(&handler);
                        let run = AssertUnwindSafe(async move { handler(req).await }).catch_unwind();
                        tasks.spawn(async move { watch.finish(run.await) });
                    }
                    Some(Incoming::SoftKill) => draining = true,
                    Some(Incoming::HardKill) => return Err(Error::HardKilled),
                    Some(Incoming::Closed(reason)) => return Err(reason),
                    None => return Err(Error::Disconnected),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = drained(&self.inner.soft_done, &mut outstanding), if draining && tasks.is_empty() => {
                    self.flush().await;
                    return Ok(());
                }
            }
        }
    }
}

/// Resolves once the soft-kill hook is done and no request is in flight,
/// including requests a handler moved to another task, request frames
/// waiting for their attachment, and response streams still pumping.
async fn drained(soft_done: &CancellationToken, outstanding: &mut watch::Receiver<usize>) {
    soft_done.cancelled().await;
    // Err only if the sender is gone, and the worker owns it.
    let _ = outstanding.wait_for(|&n| n == 0).await;
}

/// Answers, on behalf of a handler, a request the handler did not answer.
/// Lives in the request's task; see [`WATCHED`].
struct Watch {
    worker: Worker,
    key: Key,
    bits: Arc<AtomicU8>,
    finished: bool,
}

impl Watch {
    fn new(worker: Worker, req: &Request) -> Self {
        req.watch.fetch_or(WATCHED, Ordering::AcqRel);
        Self {
            worker,
            key: req.key(),
            bits: Arc::clone(&req.watch),
            finished: false,
        }
    }

    /// Stops watching; returns the bits as they were.
    fn release(&self) -> u8 {
        self.bits.fetch_and(!WATCHED, Ordering::AcqRel)
    }

    fn finish(mut self, result: std::thread::Result<Result<(), HandlerError>>) {
        self.finished = true;
        match result {
            Ok(Ok(())) => {
                // Still alive elsewhere: its own drop will answer if need be.
                if self.release() & DROPPED != 0 {
                    self.worker.answer_auto(
                        self.key,
                        kind::DROPPED,
                        "the handler returned without answering",
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, id = %self.key.0, "handler failed");
                // Answer first: a concurrent drop elsewhere then finds it answered.
                self.worker.answer_auto(self.key, kind::HANDLER, e.to_string());
                self.release();
            }
            Err(panic) => {
                self.worker
                    .answer_auto(self.key, kind::PANIC, panic_message(&*panic));
                self.release();
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The task was aborted before the handler finished. `WATCHED` stays
        // set, so the request's own drop (before or after this) stays silent.
        if !self.finished {
            self.worker
                .answer_auto(self.key, kind::ABORTED, "the handler was aborted");
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
