//! The link to the supervisor: the hello exchange, then two tasks, the
//! writer and the session (see [`session`](crate::session)). Both end when
//! the link closes.
//!
//! # Channels and their bounds
//!
//! | channel | from → to | bound | when full |
//! |---|---|---|---|
//! | writer queue (an [`outbox`](crate::outbox)) | attempts, session, handle → writer | [`WRITE_QUEUE`] | attempts never find it full: their slots are reserved before they are registered, and the session waits for room (backpressure on the reader); `emit` and `publish_*` fail with `QueueFull`; a query (`cluster_info`, `stats`) waits for room; a `Confirmed` is skipped; `ready`/`busy` wait on a task; an `Ack` or a heartbeat is skipped |
//! | done queue (an [`outbox`](crate::outbox)) | attempts → session | `MAX_IN_FLIGHT` | never: one slot reserved per attempt |
//! | to `serve` | session → `serve` | `MAX_IN_FLIGHT + 3` | never: each request in it is in the in-flight table |
//! | control | handle → session | [`CONTROL_QUEUE`] | the caller of `requests()` waits |
//! | connection queue | session → `Incoming` | [`CONNECTION_QUEUE`](crate::CONNECTION_QUEUE) | the offer is bounced (`ConnectionBounced`); `Listening` is said again once the application takes one |
//! | connection notices | `Incoming`, `Connection` → session | one `Listening` value; one id per open connection | never: a list, drained by the session into frames (waiting for writer room) |

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::attempt::Outgoing;
use crate::env::Settings;
use crate::fdpass::FdChannel;
use crate::inflight::{InFlight, MAX_IN_FLIGHT};
use crate::outbox::{self, outbox};
use crate::protocol::quiet::{self, QuietWrite};
use crate::protocol::{
    feed_frame, frame_reader, frame_writer, Capabilities, FrameWriter, FromWorker, SupervisorHello, ToWorker,
    WorkerHello, FRAME_OVERHEAD, PROTOCOL_VERSION,
};
use crate::session::{read_error, Reader, Session, SERVE_QUEUE};
use crate::worker::Channels;
use crate::{Error, Worker};

/// The smallest maximum frame length this SDK accepts from a supervisor:
/// below it even an error answer may not fit.
pub(crate) const MIN_FRAME_LEN: usize = 4 * FRAME_OVERHEAD;

/// Capacity of the writer queue: two reserved slots per possible attempt
/// (its answer; an early `Accepted`), plus room for everything else
/// (heartbeats, `Ready`/`Busy`, emits, acks, the session's own answers).
pub(crate) const WRITE_QUEUE: usize = 2 * MAX_IN_FLIGHT + 1024;

/// Capacity of the control queue (questions to the session).
pub(crate) const CONTROL_QUEUE: usize = 16;

type Writer = FrameWriter<QuietWrite, FromWorker>;

/// Exchanges hellos over an open socket and starts the writer and the
/// session task (which also reads the fd channel, if there is one).
pub(crate) async fn connect_stream(
    stream: UnixStream,
    mut settings: Settings,
    fd_channel: Option<FdChannel>,
    stop_on_sigterm: bool,
) -> Result<Worker, Error> {
    // Halves that wake this process only for what it waits for: not at
    // every frame the supervisor reads (`protocol::quiet`).
    let (rd, wr) = quiet::split(stream)?;
    let mut reader: Reader = frame_reader(rd, settings.max_frame_len);
    let mut writer: Writer = frame_writer(wr, settings.max_frame_len);

    let hello = WorkerHello {
        version: PROTOCOL_VERSION,
        pid: crate::pid(),
        agent: concat!("nanny-worker/", env!("CARGO_PKG_VERSION")).to_owned(),
        capabilities: Capabilities {
            fd_channel: fd_channel.is_some(),
            // Balanced connections ride on the fd channel.
            connections: fd_channel.is_some(),
            messaging: true,
            exit: true,
        }
        .names(),
    };
    writer.send(FromWorker::Hello(hello)).await?;
    let theirs = match reader.next().await {
        None => return Err(Error::Disconnected),
        Some(Err(e)) => return Err(read_error(e)),
        Some(Ok(ToWorker::Hello(h))) => h,
        Some(Ok(other)) => {
            return Err(Error::Protocol(format!(
                "expected a hello, got {}",
                frame_name(&other)
            )))
        }
    };
    check_hello(&theirs, &settings)?;
    // The hello is authoritative; the environment only bounded the hello itself.
    let max = theirs.max_frame_len as usize;
    settings.pulse = Duration::from_millis(theirs.pulse_ms);
    settings.max_frame_len = max;
    settings.supervisor_version = theirs.version;
    settings.unhealthy_timeout = theirs.unhealthy_timeout_ms.map(Duration::from_millis);
    reader.get_mut().decoder_mut().set_max_frame_length(max);
    writer.get_mut().encoder_mut().set_max_frame_length(max);
    let term = if stop_on_sigterm {
        // SIGTERM from the supervisor (its stop sequence) or anyone: a soft kill.
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        )?)
    } else {
        None
    };
    Ok(start(settings, reader, writer, fd_channel, term))
}

/// The supervisor's hello: a version range that holds ours, our id, sane
/// settings.
fn check_hello(theirs: &SupervisorHello, settings: &Settings) -> Result<(), Error> {
    let accepted = theirs.min_version.unwrap_or(theirs.version)..=theirs.version;
    if !accepted.contains(&PROTOCOL_VERSION) {
        return Err(Error::Version {
            ours: PROTOCOL_VERSION,
            theirs: theirs.version,
            theirs_min: *accepted.start(),
        });
    }
    if theirs.worker_id != settings.worker_id {
        return Err(Error::Protocol(format!(
            "the hello is for worker {}, but this is worker {}",
            theirs.worker_id, settings.worker_id
        )));
    }
    if theirs.pulse_ms == 0 {
        return Err(Error::Protocol("the hello's pulse_ms is 0".into()));
    }
    let max = theirs.max_frame_len as usize;
    if max < MIN_FRAME_LEN {
        return Err(Error::Protocol(format!(
            "the hello's max_frame_len {max} is below the minimum of {MIN_FRAME_LEN}"
        )));
    }
    Ok(())
}

/// Creates the channels and starts the writer and the session.
fn start(
    settings: Settings,
    reader: Reader,
    writer: Writer,
    fd_channel: Option<FdChannel>,
    term: Option<tokio::signal::unix::Signal>,
) -> Worker {
    let (out, out_rx) = outbox(WRITE_QUEUE);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (to_serve, serve_queue) = mpsc::channel(SERVE_QUEUE);
    let (done_tx, done_rx) = outbox(MAX_IN_FLIGHT);
    let (inflight, idle) = InFlight::new(fd_channel.is_some());
    let closed = CancellationToken::new();
    let channels = Channels {
        out,
        control,
        serve_queue,
        idle,
        closed: closed.clone(),
    };
    // Only where it helps: on a multi-thread runtime it would burn a core.
    let spin = (settings.spin)
        .filter(|_| crate::spin::helps_here())
        .map(crate::spin::Spin::new);
    if let Some(spin) = &spin {
        // Ends with the link, as the session does.
        tokio::spawn(Arc::clone(spin).run(closed.clone()));
    }
    let worker = Worker::new(settings, channels, fd_channel.map(Arc::new));
    tokio::spawn(write_loop(writer, out_rx, closed));
    let session = Session {
        worker: worker.clone(),
        inflight,
        reader,
        done_tx,
        done_rx,
        finished: VecDeque::new(),
        control: control_rx,
        to_serve,
        term,
        soft_killed: false,
        hard_killed: false,
        started: std::time::Instant::now(),
        spin,
    };
    tokio::spawn(session.run());
    worker
}

fn frame_name(frame: &ToWorker) -> &'static str {
    match frame {
        ToWorker::Hello(_) => "Hello",
        ToWorker::Request(_) => "Request",
        ToWorker::Cancel { .. } => "Cancel",
        ToWorker::Broadcast { .. } => "Broadcast",
        ToWorker::SoftKill => "SoftKill",
        ToWorker::HardKill => "HardKill",
        ToWorker::Drain => "Drain",
        ToWorker::Message { .. } => "Message",
        ToWorker::QueryAnswer { .. } => "QueryAnswer",
        ToWorker::Answer { .. } => "Answer",
        ToWorker::Exit { .. } => "Exit",
    }
}

/// Writes queued frames, coalescing: frames are fed into the buffer and
/// flushed only once the queue is momentarily empty. Ends (and so closes
/// the queue: the receiver is dropped) when the link closes.
async fn write_loop(mut writer: Writer, queue: outbox::Receiver<Outgoing>, closed: CancellationToken) {
    let result = tokio::select! {
        r = pump(&mut writer, &queue) => r,
        () = closed.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "writing to the supervisor failed");
    }
    closed.cancel();
}

async fn pump(writer: &mut Writer, queue: &outbox::Receiver<Outgoing>) -> io::Result<()> {
    let mut batch = VecDeque::new();
    while queue.take(&mut batch).await {
        loop {
            for item in batch.drain(..) {
                write(writer, item).await?;
            }
            if queue.try_take(&mut batch) != Some(true) {
                break;
            }
        }
        writer.flush().await?;
        queue.idle(&mut batch);
    }
    Ok(())
}

/// Feeds one queued item to the writer.
async fn write(writer: &mut Writer, item: Outgoing) -> io::Result<()> {
    match item {
        Outgoing::Frame(frame) => feed_frame(writer, &frame).await,
        Outgoing::Answer { accepted, response } => {
            if let Some(accepted) = accepted {
                feed_frame(writer, &accepted).await?;
            }
            feed_frame(writer, &response).await
        }
        Outgoing::Flush(done) => {
            writer.flush().await?;
            let _ = done.send(());
            Ok(())
        }
    }
}
