//! The I/O tasks of one worker: reader, writer and process (see the module
//! docs of [`crate::worker`]).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use nanny_worker::fdpass::FdChannel;
use nanny_worker::protocol::{self as p, FdTag, FromWorker, ToWorker};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::spawn::Spawned;
use crate::events::ExitInfo;

/// What the link tasks tell the supervisor task.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A decoded frame.
    Frame(u64, FromWorker),
    /// The worker's end of the socket closed (end of file or reset). Every
    /// exit starts with this; a worker that stays alive after it is stopped.
    HungUp(u64),
    /// The byte stream broke the protocol (malformed or oversize frame).
    Broken(u64, String),
    /// A descriptor arrived on the fd channel.
    Fd(u64, FdTag, OwnedFd),
    /// The process exited and was reaped.
    Exited(u64, ExitInfo),
}

/// What the writer task sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A control frame.
    Frame(ToWorker),
    /// A descriptor on the fd channel; our copy is closed once sent.
    Fd(FdTag, OwnedFd),
}

/// The supervisor task's side of one worker's tasks.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames to send. Bounded; the supervisor task only `try_send`s, and a
    /// full queue means the worker stopped reading.
    pub(crate) frames: mpsc::Sender<Outgoing>,
    /// Signals for the worker's process group, delivered by the task that reaps it.
    pub(crate) signals: mpsc::UnboundedSender<Signal>,
}

/// Starts the three tasks of worker `id` on `tracker`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    tracker: &TaskTracker,
    id: u64,
    pool: &str,
    logs: &Arc<super::output::LogCounts>,
    spawned: Spawned,
    max_frame_len: usize,
    frame_capacity: usize,
    events: mpsc::Sender<LinkEvent>,
) -> Link {
    let Spawned {
        mut child,
        pid,
        stream,
        fd_channel,
        ..
    } = spawned;
    let (read, write) = stream.into_split();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Outgoing>(frame_capacity);
    let channel = match FdChannel::new(fd_channel) {
        Ok(c) => Some(Arc::new(c)),
        Err(error) => {
            tracing::warn!(worker = id, %error, "fd channel unusable: no attachments for this worker");
            None
        }
    };
    let (signals_tx, mut signals_rx) = mpsc::unbounded_channel::<Signal>();
    let gone = CancellationToken::new();
    // `silent` pools: the pipes exist only then.
    let pool: Arc<str> = pool.into();
    if let Some(out) = child.stdout.take() {
        super::output::capture(
            tracker,
            out,
            id,
            pool.clone(),
            "stdout",
            logs.clone(),
            gone.clone(),
        );
    }
    if let Some(err) = child.stderr.take() {
        super::output::capture(tracker, err, id, pool, "stderr", logs.clone(), gone.clone());
    }

    // Reader.
    let mut reader: p::FrameReader<_, FromWorker> = p::frame_reader(read, max_frame_len);
    let tx = events.clone();
    let stop = gone.clone();
    let reader_task = tracker.spawn(async move {
        loop {
            // Biased: frames already received are forwarded before a stop.
            let item = tokio::select! {
                biased;
                item = reader.next() => item,
                () = stop.cancelled() => break,
            };
            let event = match item {
                Some(Ok(frame)) => LinkEvent::Frame(id, frame),
                // A reset is how a worker that died with frames unread hangs
                // up (a crash, or our own SIGKILL): its exit follows, and it
                // broke no protocol.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => LinkEvent::HungUp(id),
                Some(Err(e)) => LinkEvent::Broken(id, e.to_string()),
                None => LinkEvent::HungUp(id),
            };
            let last = matches!(event, LinkEvent::HungUp(_));
            let broken = matches!(event, LinkEvent::Broken(..));
            if tx.send(event).await.is_err() || broken || last {
                break;
            }
        }
    });

    // Writer: feed everything queued, flush once per batch.
    let mut writer: p::FrameWriter<_, ToWorker> = p::frame_writer(write, max_frame_len);
    let stop = gone.clone();
    let out_channel = channel.clone();
    tracker.spawn(async move {
        loop {
            let first = tokio::select! {
                f = frames_rx.recv() => f,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut next = Some(first);
            while let Some(item) = next {
                let sent = match item {
                    Outgoing::Frame(frame) => writer.feed(frame).await.is_ok(),
                    Outgoing::Fd(tag, fd) => match &out_channel {
                        // Our copy of `fd` closes when it drops, sent or not.
                        Some(c) => c.send(tag, fd.as_fd()).await.is_ok(),
                        None => false,
                    },
                };
                if !sent {
                    return;
                }
                next = frames_rx.try_recv().ok();
            }
            if writer.flush().await.is_err() {
                break;
            }
        }
        // Dropping the write half shuts the socket down for writing: the
        // worker reads EOF.
    });

    // Fd reader.
    let fd_task = channel.map(|channel| {
        let tx = events.clone();
        let stop = gone.clone();
        tracker.spawn(async move {
            loop {
                let item = tokio::select! {
                    biased;
                    item = channel.recv() => item,
                    () = stop.cancelled() => break,
                };
                let event = match item {
                    Ok(Some((tag, fd))) => LinkEvent::Fd(id, tag, fd),
                    Ok(None) => break,
                    // A worker that exits with descriptors unread on its
                    // channel (one it never accepted) resets it: no protocol
                    // error, as on the main socket.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => LinkEvent::Broken(id, format!("fd channel: {e}")),
                };
                let broken = matches!(event, LinkEvent::Broken(..));
                if tx.send(event).await.is_err() || broken {
                    break;
                }
            }
        })
    });

    // Process: deliver signals until reaped, then report.
    tracker.spawn(async move {
        let pgid = Pid::from_raw(pid as i32);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(sig) = signals_rx.recv() => {
                    // The child is not reaped yet (only this task reaps it),
                    // so its pid and group are still ours.
                    let _ = killpg(pgid, sig);
                }
            }
        };
        // The reader forwards what the worker wrote before dying, then ends;
        // only then is the exit reported, so no answer arrives after it.
        gone.cancel();
        let _ = reader_task.await;
        if let Some(fd_task) = fd_task {
            let _ = fd_task.await;
        }
        let info = match status {
            Ok(s) => ExitInfo {
                code: s.code(),
                signal: s.signal(),
            },
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        let _ = events.send(LinkEvent::Exited(id, info)).await;
    });

    Link {
        frames: frames_tx,
        signals: signals_tx,
    }
}
