//! Drives a [`Worker`] over a real socketpair against a fake supervisor
//! written with the protocol helpers.

mod asks;
mod attach_refusals;
mod attach_requests;
mod attach_streams;
#[cfg(feature = "axum")]
mod conn_axum;
mod conn_notices;
mod connections;
mod env;
mod fdpass;
mod hostile_frames;
mod hostile_samples;
mod link;
mod messaging;
mod outbox;
mod serve;
mod stream;
mod vectors;
mod vectors_cases;
mod vectors_json;
mod wire;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use uuid::Uuid;

use crate::env::Settings;
use crate::fdpass::FdChannel;
use crate::protocol::*;
use crate::{Error, Worker};

/// Generous: only reached when a test is about to fail.
const TIMEOUT: Duration = Duration::from_secs(5);
const WORKER_ID: u64 = 7;

/// The supervisor's end of the link.
struct Fake {
    rx: FrameReader<OwnedReadHalf, FromWorker>,
    tx: FrameWriter<OwnedWriteHalf, ToWorker>,
    /// The supervisor's end of the fd channel, if the worker has one.
    fds: Option<FdChannel>,
}

struct Opts {
    version: u32,
    pulse_ms: u64,
    max_frame_len: u32,
    fd_channel: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            version: PROTOCOL_VERSION,
            pulse_ms: 60_000,
            max_frame_len: 64 * 1024,
            fd_channel: true,
        }
    }
}

fn settings() -> Settings {
    Settings {
        worker_id: WORKER_ID,
        pool: "images".into(),
        name: Some("images:03".into()),
        logical_id: 2,
        supervisor_pid: 4242,
        pulse: Duration::from_secs(1),
        max_frame_len: DEFAULT_MAX_FRAME_LEN,
        supervisor_version: 0,
        unhealthy_timeout: None,
        spin: None,
    }
}

/// Connects a worker to a fake supervisor; both hellos are exchanged.
async fn start() -> (Worker, Fake) {
    start_with(Opts::default()).await
}

async fn start_with(opts: Opts) -> (Worker, Fake) {
    let (worker, fake) = try_start(opts).await;
    (worker.expect("connect"), fake)
}

async fn try_start(opts: Opts) -> (Result<Worker, Error>, Fake) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (our_fds, their_fds) = if opts.fd_channel {
        let (a, b) = FdChannel::pair().unwrap();
        (Some(FdChannel::new(a).unwrap()), Some(FdChannel::new(b).unwrap()))
    } else {
        (None, None)
    };
    let supervisor = async move {
        let (rd, wr) = theirs.into_split();
        let mut fake = Fake {
            rx: frame_reader(rd, DEFAULT_MAX_FRAME_LEN),
            tx: frame_writer(wr, DEFAULT_MAX_FRAME_LEN),
            fds: their_fds,
        };
        let hello = SupervisorHello {
            version: opts.version,
            min_version: Some(opts.version),
            worker_id: WORKER_ID,
            pulse_ms: opts.pulse_ms,
            max_frame_len: opts.max_frame_len,
            unhealthy_timeout_ms: None,
        };
        fake.send(ToWorker::Hello(hello)).await;
        match fake.next_any().await {
            FromWorker::Hello(h) => {
                assert_eq!(h.version, PROTOCOL_VERSION);
                assert_eq!(h.pid, std::process::id());
                assert!(h.agent.starts_with("nanny-worker/"));
                let caps = Capabilities::from_names(&h.capabilities);
                assert_eq!(
                    caps.fd_channel, opts.fd_channel,
                    "declares the fd channel iff it has one"
                );
                assert!(caps.exit, "understands Exit (protocol version 4)");
            }
            other => panic!("expected the worker's hello, got {other:?}"),
        }
        fake
    };
    tokio::join!(
        crate::link::connect_stream(ours, settings(), our_fds, false),
        supervisor
    )
}

impl Fake {
    async fn send(&mut self, frame: ToWorker) {
        self.tx.send(frame).await.expect("send to worker");
    }

    /// The next frame of any kind.
    async fn next_any(&mut self) -> FromWorker {
        tokio::time::timeout(TIMEOUT, self.rx.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("the worker closed the link")
            .expect("bad frame from the worker")
    }

    /// The next frame that is not a heartbeat.
    async fn next(&mut self) -> FromWorker {
        loop {
            match self.next_any().await {
                FromWorker::Heartbeat(_) => continue,
                other => return other,
            }
        }
    }

    /// The first heartbeat that satisfies `pred`; other frames are skipped.
    async fn heartbeat_where(&mut self, mut pred: impl FnMut(&Heartbeat) -> bool) -> Heartbeat {
        let wait = async {
            loop {
                if let FromWorker::Heartbeat(hb) = self.next_any().await {
                    if pred(&hb) {
                        return hb;
                    }
                }
            }
        };
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .expect("no matching heartbeat in time")
    }

    /// Sends a request and returns its id.
    async fn request(&mut self, payload: &(impl Serialize + ?Sized)) -> Uuid {
        self.request_with(payload, None).await
    }

    /// Sends a request frame that may announce an attachment (send the
    /// descriptor with [`send_fd`](Self::send_fd)); returns its id.
    async fn request_with(
        &mut self,
        payload: &(impl Serialize + ?Sized),
        attachment: Option<AttachmentKind>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        self.send(ToWorker::Request(RequestFrame {
            id,
            attempt: 1,
            created_at_ms: 1_700_000_000_000,
            payload: encode_payload(payload).unwrap(),
            attachment,
        }))
        .await;
        id
    }

    /// Sends attempt 1's attachment on the fd channel.
    async fn send_fd(&self, id: Uuid, fd: std::os::fd::BorrowedFd<'_>) {
        let tag = FdTag {
            id,
            attempt: 1,
            kind: FD_KIND_ATTACHMENT,
        };
        let channel = self.fds.as_ref().expect("the fake has an fd channel");
        channel.send(tag, fd).await.expect("send an fd to the worker");
    }

    /// Sends a whole request on the fd channel: its tag (kind
    /// [`FD_KIND_ATTACHMENT`], the frame's id and attempt), the encoded
    /// `frame` inline, and `fd`. Nothing goes on the framed socket.
    async fn send_inline(&self, frame: RequestFrame, fd: std::os::fd::BorrowedFd<'_>) {
        let tag = FdTag {
            id: frame.id,
            attempt: frame.attempt,
            kind: FD_KIND_ATTACHMENT,
        };
        let bytes = encode_payload(&frame).unwrap();
        let channel = self.fds.as_ref().expect("the fake has an fd channel");
        channel
            .send_with(tag, fd, &bytes)
            .await
            .expect("send an inline request to the worker");
    }

    /// Offers a connection (`fd`) as `id#attempt` from listener `"web"`.
    async fn offer(&self, id: Uuid, attempt: u32, kind: AttachmentKind, fd: std::os::fd::BorrowedFd<'_>) {
        let frame = ConnectionFrame {
            listener: "web".into(),
            kind,
        };
        self.offer_raw(id, attempt, &encode_payload(&frame).unwrap(), fd)
            .await;
    }

    /// Sends a connection message whose data after the tag is `data`.
    async fn offer_raw(&self, id: Uuid, attempt: u32, data: &[u8], fd: std::os::fd::BorrowedFd<'_>) {
        let tag = FdTag {
            id,
            attempt,
            kind: FD_KIND_CONNECTION,
        };
        let channel = self.fds.as_ref().expect("the fake has an fd channel");
        channel
            .send_with(tag, fd, data)
            .await
            .expect("send a connection to the worker");
    }

    /// The next descriptor the worker sends on the fd channel.
    async fn recv_fd(&self) -> (FdTag, std::os::fd::OwnedFd) {
        let channel = self.fds.as_ref().expect("the fake has an fd channel");
        let m = tokio::time::timeout(TIMEOUT, channel.recv())
            .await
            .expect("timed out waiting for an fd")
            .expect("fd channel error")
            .expect("the worker closed the fd channel");
        (m.tag, m.fd)
    }

    /// The next response; asserts it answers `id`.
    async fn response(&mut self, id: Uuid) -> Outcome {
        match self.next().await {
            FromWorker::Response {
                id: got,
                attempt,
                outcome,
                ..
            } => {
                assert_eq!((got, attempt), (id, 1), "response to another request");
                outcome
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Expects `Accepted` for `id`, then its response.
    async fn response_after_accepted(&mut self, id: Uuid) -> Outcome {
        assert_eq!(self.next().await, accepted(id));
        self.response(id).await
    }

    /// The next response, which must be a remote error; returns its kind.
    async fn error_kind(&mut self, id: Uuid) -> String {
        match self.response(id).await {
            Outcome::Err(e) => e.kind,
            Outcome::Ok(_) => panic!("expected an error response"),
        }
    }

    /// Asserts that no non-heartbeat frame arrives for a short while.
    async fn assert_quiet(&mut self) {
        let wait = tokio::time::timeout(Duration::from_millis(100), self.next()).await;
        assert!(wait.is_err(), "unexpected frame: {:?}", wait.unwrap());
    }
}

/// The worker's `Accepted` for attempt 1 of `id`.
fn accepted(id: Uuid) -> FromWorker {
    FromWorker::Accepted { id, attempt: 1 }
}

fn ok_payload<T: serde::de::DeserializeOwned>(outcome: Outcome) -> T {
    match outcome {
        Outcome::Ok(bytes) => decode_payload(&bytes).unwrap(),
        Outcome::Err(e) => panic!("expected Ok, got {e}"),
    }
}

/// Attempt 1 of a new request with `payload` that announces `attachment`
/// (for [`Fake::send_inline`]).
fn attached_frame(payload: &(impl Serialize + ?Sized), attachment: AttachmentKind) -> RequestFrame {
    RequestFrame {
        id: Uuid::new_v4(),
        attempt: 1,
        created_at_ms: 1_700_000_000_000,
        payload: encode_payload(payload).unwrap(),
        attachment: Some(attachment),
    }
}

/// Waits until the worker has `n` requests in flight.
async fn wait_for_requests(worker: &Worker, n: usize) {
    tokio::time::timeout(TIMEOUT, async {
        while worker.requests().await.len() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("in-flight count not reached in time");
}

/// How many frames and descriptors wait in the session's matcher.
async fn waiting(worker: &Worker) -> usize {
    let (reply, answer) = tokio::sync::oneshot::channel();
    worker
        .inner
        .control
        .send(crate::worker::Control::Waiting(reply))
        .await
        .expect("the session runs");
    answer.await.expect("the session answers")
}

/// Polls `cond` until it holds.
async fn wait_until(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(TIMEOUT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}

/// A non-blocking pipe: its read end, and its write end to pass around.
pub(super) fn pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    (std::fs::File::from(r), w)
}

/// True at end of file: every copy of the pipe's write end is closed;
/// false when one is still open somewhere (the read would block).
pub(super) fn is_eof(r: &mut std::fs::File) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) => panic!("read: {e}"),
        }
    }
}
