//! The link to the supervisor: hello exchange, then a reader, a writer and a
//! heartbeat task. All three end when the link closes.

use std::io;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::env::Settings;
use crate::fdpass::FdChannel;
use crate::inflight::FRAME_OVERHEAD;
use crate::protocol::{
    frame_reader, frame_writer, FrameReader, FrameWriter, FromWorker, Heartbeat, ToWorker, WorkerHello,
    PROTOCOL_VERSION,
};
use crate::request::Event;
use crate::worker::{Incoming, Outgoing};
use crate::{Error, Worker};

/// The smallest maximum frame length this SDK accepts from a supervisor:
/// below it even an error answer may not fit.
pub(crate) const MIN_FRAME_LEN: usize = 4 * FRAME_OVERHEAD;

type Reader = FrameReader<OwnedReadHalf, ToWorker>;
type Writer = FrameWriter<OwnedWriteHalf, FromWorker>;

/// Exchanges hellos over an open socket and starts the link's tasks; with
/// an fd channel, also the task that receives attachments.
pub(crate) async fn connect_stream(
    stream: UnixStream,
    mut settings: Settings,
    fd_channel: Option<FdChannel>,
    stop_on_sigterm: bool,
) -> Result<Worker, Error> {
    let (rd, wr) = stream.into_split();
    let mut reader: Reader = frame_reader(rd, settings.max_frame_len);
    let mut writer: Writer = frame_writer(wr, settings.max_frame_len);

    let hello = WorkerHello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
        agent: concat!("nanny-worker/", env!("CARGO_PKG_VERSION")).to_owned(),
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
    if theirs.version != PROTOCOL_VERSION {
        return Err(Error::Version {
            ours: PROTOCOL_VERSION,
            theirs: theirs.version,
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
    // The hello is authoritative; the environment only bounded the hello itself.
    settings.pulse = Duration::from_millis(theirs.pulse_ms);
    settings.max_frame_len = max;
    reader.get_mut().decoder_mut().set_max_frame_length(max);
    writer.get_mut().encoder_mut().set_max_frame_length(max);

    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let has_fd_channel = fd_channel.is_some();
    let (worker, in_tx) = Worker::new(settings, out_tx, fd_channel);
    tokio::spawn(write_loop(writer, out_rx, worker.inner.closed.clone()));
    if has_fd_channel {
        tokio::spawn(fd_loop(worker.clone(), in_tx.clone()));
    }
    // SIGTERM from the supervisor (its stop sequence) or anyone: a soft kill.
    let term = if stop_on_sigterm {
        Some(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        )?)
    } else {
        None
    };
    tokio::spawn(read_loop(worker.clone(), reader, in_tx, term));
    tokio::spawn(heartbeat_loop(worker.clone()));
    Ok(worker)
}

fn read_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => Error::Protocol(e.to_string()),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Error::Disconnected,
        _ => Error::Io(e),
    }
}

fn frame_name(frame: &ToWorker) -> &'static str {
    match frame {
        ToWorker::Hello(_) => "Hello",
        ToWorker::Request(_) => "Request",
        ToWorker::Cancel { .. } => "Cancel",
        ToWorker::Broadcast { .. } => "Broadcast",
        ToWorker::SoftKill => "SoftKill",
        ToWorker::HardKill => "HardKill",
    }
}

/// Reads frames until end of file, a bad frame, or the link closing from the
/// writer's side; then closes the link and tells `serve` why.
async fn read_loop(
    worker: Worker,
    mut reader: Reader,
    to_serve: mpsc::UnboundedSender<Incoming>,
    mut term: Option<tokio::signal::unix::Signal>,
) {
    let closed = worker.inner.closed.clone();
    let reason = loop {
        // `FramedRead::next` is cancel safe: no bytes are lost to the select.
        let next = tokio::select! {
            next = reader.next() => next,
            () = closed.cancelled() => break Error::Disconnected,
            Some(()) = async { term.as_mut()?.recv().await } => {
                tracing::debug!("SIGTERM: soft kill");
                term = None; // once is enough; a second SIGTERM is ignored
                Some(Ok(ToWorker::SoftKill))
            }
        };
        let frame = match next {
            None => break Error::Disconnected,
            Some(Err(e)) => break read_error(e),
            Some(Ok(frame)) => frame,
        };
        match frame {
            ToWorker::Hello(_) => break Error::Protocol("a second hello".into()),
            ToWorker::Request(frame) if frame.attachment.is_some() => {
                if let Some(req) = worker.attachment_frame(frame) {
                    let _ = to_serve.send(Incoming::Request(req));
                }
            }
            ToWorker::Request(frame) => {
                let (id, attempt) = (frame.id, frame.attempt);
                match worker.register(frame) {
                    Some(req) => {
                        let _ = to_serve.send(Incoming::Request(req));
                    }
                    None => tracing::warn!(%id, attempt, "ignoring a duplicate request attempt"),
                }
            }
            ToWorker::Cancel { id, attempt } => worker.cancel((id, attempt)),
            ToWorker::Broadcast { event, payload } => worker.dispatch_broadcast(Event::new(event, payload)),
            ToWorker::SoftKill => {
                // A request sent inline on the fd channel before this frame
                // is in the channel by now: take it, so the drain waits for it.
                worker.take_fd_messages(&to_serve, true);
                worker.start_soft_kill();
                let _ = to_serve.send(Incoming::SoftKill);
            }
            ToWorker::HardKill => {
                worker.run_hard_kill_hook();
                worker.cancel_all();
                let _ = to_serve.send(Incoming::HardKill);
            }
        }
    };
    match &reason {
        Error::Disconnected => tracing::debug!("supervisor link closed"),
        other => tracing::warn!(error = %other, "supervisor link failed"),
    }
    closed.cancel();
    let _ = to_serve.send(Incoming::Closed(reason));
}

/// Receives attachments on the fd channel until the link closes or the
/// channel ends; a request whose frame was waiting, or came inline, goes to
/// `serve`.
async fn fd_loop(worker: Worker, to_serve: mpsc::UnboundedSender<Incoming>) {
    let Some(channel) = worker.inner.fd_channel.as_ref() else {
        return;
    };
    let closed = worker.inner.closed.clone();
    loop {
        let ready = tokio::select! {
            ready = channel.readable() => ready,
            () = closed.cancelled() => return,
        };
        if let Err(e) = ready {
            tracing::warn!(error = %e, "the fd channel failed");
            return;
        }
        if !worker.take_fd_messages(&to_serve, false) {
            return;
        }
    }
}

/// Writes queued frames, coalescing: frames are fed into the buffer and
/// flushed only once the queue is momentarily empty.
async fn write_loop(
    mut writer: Writer,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    closed: CancellationToken,
) {
    let result = tokio::select! {
        r = pump(&mut writer, &mut queue) => r,
        () = closed.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "writing to the supervisor failed");
    }
    closed.cancel();
}

async fn pump(writer: &mut Writer, queue: &mut mpsc::UnboundedReceiver<Outgoing>) -> io::Result<()> {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Outgoing::Frame(frame) => writer.feed(frame).await?,
                Outgoing::Flush(done) => {
                    writer.flush().await?;
                    let _ = done.send(());
                }
            }
            next = queue.try_recv().ok();
        }
        writer.flush().await?;
    }
    Ok(())
}

/// Sends a heartbeat every pulse until the link closes.
async fn heartbeat_loop(worker: Worker) {
    let page_size = page_size();
    let mut pulse = tokio::time::interval(worker.inner.settings.pulse);
    pulse.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let closed = worker.inner.closed.clone();
    loop {
        let scheduled = tokio::select! {
            t = pulse.tick() => t,
            () = closed.cancelled() => return,
        };
        let lag = tokio::time::Instant::now().saturating_duration_since(scheduled);
        let beat = Heartbeat {
            rss_bytes: rss_pages().unwrap_or(0).saturating_mul(page_size),
            in_flight: worker.in_flight(),
            lag_us: lag.as_micros().try_into().unwrap_or(u64::MAX),
            uptime_ms: worker
                .inner
                .started
                .elapsed()
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
            served: worker.inner.served.load(std::sync::atomic::Ordering::Relaxed),
        };
        if !worker.send(FromWorker::Heartbeat(beat)) {
            return;
        }
    }
}

fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    }
}

/// Resident pages, from the second field of `/proc/self/statm`.
fn rss_pages() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm.split_whitespace().nth(1)?.parse().ok()
}
