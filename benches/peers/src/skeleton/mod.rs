//! The skeletons: the least a dispatcher of nanny's shape can cost, to
//! tell nanny's own overhead apart from its architecture's.
//!
//! Callers are independent futures (`enqueue(&[u8])`, driven by
//! `buffer_unordered` as nanny's callers are), each with a payload `Vec`
//! and a oneshot of its own; every answer is an echo copied out of a read
//! into a `Vec`. Two shapes ([`Shape`]):
//!
//! - [`task::OneTask`] is nanny's: one task owns the table of pending
//!   requests; callers send it commands through a bounded mpsc; each
//!   worker socket has a reader task that hands it one batch of answers
//!   per read; each turn of the task encodes its frames into the links'
//!   buffers and writes each with one `try_write`. On a multi-thread
//!   runtime (`skeleton`) or a current-thread one (`skeleton-ct`).
//! - [`direct::Direct`] has no task between callers and sockets: a caller
//!   files its request in a shared table and appends its frame to its
//!   link's buffer itself; a writer task per link writes what gathered;
//!   the reader resolves the callers (`skeleton-direct`).
//!
//! What both leave out, and nanny keeps: retries, timeouts and deadlines,
//! cancellation of dropped callers, queues and their bounds, routing by
//! load, tallies and the latency histogram, health, restarts, the typed
//! protocol and the worker SDK (their frames are the bare-tokio peer's,
//! an 8-byte id before the payload, echoed by the same workers). So nanny
//! can come near them and never reach them: they are floors of the
//! architecture, not peers. They measure the round trip and the burst rows
//! only: they restart nothing.

pub mod direct;
pub mod task;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::net::UnixStream as StdStream;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::unix::OwnedReadHalf;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::bare_tokio::on;
use crate::children::Worker;
use crate::frames::{split, HEADER, READ_CHUNK};
use crate::report::Burst;
use crate::workloads::{runtime, steady, Peer, SMALL, WARM_UP};

/// Bytes of the request id at the start of every frame's body.
const ID: usize = 8;

/// An answer: the link it came from and the echoed payload.
pub type Answer = (usize, Vec<u8>);

/// The callers waiting, by request id.
type Table = HashMap<u64, oneshot::Sender<Answer>, BuildHasherDefault<IdHasher>>;

/// A dispatcher's shape: how it starts over the workers' sockets and how a
/// caller enqueues.
pub trait Shape: Clone + Send + Sync + 'static {
    /// Whether callers and dispatcher share one current-thread runtime.
    const CURRENT: bool;

    /// Starts the dispatcher's tasks over `socks` (one per worker), on the
    /// runtime it is called on.
    fn start(socks: Vec<StdStream>) -> Self;

    /// Sends `payload` to a worker and waits for its echo.
    fn enqueue(&self, payload: &[u8]) -> impl Future<Output = Answer> + Send;
}

/// Request ids are counters: their own hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Appends request `id`'s frame to `out`.
fn push_request(out: &mut Vec<u8>, id: u64, payload: &[u8]) {
    out.extend_from_slice(&((ID + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads `rd` until it closes, handing `each` every read's answers as
/// `(id, echoed payload)`, in one batch per read, until it says no more.
async fn read_answers<F: Future<Output = bool>>(
    mut rd: OwnedReadHalf,
    mut each: impl FnMut(Vec<(u64, Vec<u8>)>) -> F,
) {
    let mut buf = bytes::BytesMut::with_capacity(READ_CHUNK);
    loop {
        let mut batch = Vec::new();
        buf.reserve(READ_CHUNK / 4);
        if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        let mut at = 0;
        let done = split(&buf, |len| {
            let body = &buf[at + HEADER..at + HEADER + len];
            let id = u64::from_le_bytes(body[..ID].try_into().expect("an id"));
            batch.push((id, body[ID..].to_vec()));
            at += HEADER + len;
        });
        bytes::Buf::advance(&mut buf, done);
        if !batch.is_empty() && !each(batch).await {
            return;
        }
    }
}

/// A skeleton of shape `S`, with its bare-tokio echo workers.
#[derive(Debug)]
pub struct Skeleton<S> {
    rt: Runtime,
    shape: S,
    workers: Vec<Worker>,
}

impl<S: Shape + std::fmt::Debug> Peer for Skeleton<S> {
    fn start(workers: usize) -> Self {
        let rt = runtime(S::CURRENT);
        let (mut procs, mut socks) = (Vec::new(), Vec::new());
        for _ in 0..workers {
            let (ours, theirs) = StdStream::pair().expect("socketpair");
            procs.push(Worker::spawn("tokio", theirs).expect("spawn a tokio worker"));
            ours.set_nonblocking(true).expect("nonblocking");
            socks.push(ours);
        }
        let shape = on(&rt, async move {
            let shape = S::start(socks);
            for _ in 0..workers {
                shape.enqueue(&[7u8; SMALL]).await;
            }
            shape
        });
        Self {
            rt,
            shape,
            workers: procs,
        }
    }

    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration> {
        let shape = self.shape.clone();
        on(&self.rt, async move {
            let payload = [7u8; SMALL];
            for _ in 0..WARM_UP {
                shape.enqueue(&payload).await;
            }
            let (start, mut each) = (Instant::now(), Vec::with_capacity(100_000));
            while start.elapsed() < run_for {
                let t = Instant::now();
                let (_, data) = shape.enqueue(&payload).await;
                assert_eq!(data.len(), SMALL, "the answer is the echo");
                each.push(t.elapsed());
            }
            each
        })
    }

    fn burst(&mut self, size: usize, run_for: Duration) -> Burst {
        let shape = self.shape.clone();
        on(&self.rt, async move {
            let payload = vec![7u8; size];
            steady(run_for, |_| async {
                let (link, data) = shape.enqueue(&payload).await;
                assert_eq!(data.len(), size, "the answer is the echo");
                link
            })
            .await
        })
    }

    fn kill_one(&mut self) {
        unreachable!("a skeleton measures no lifecycle rows (main refuses them)")
    }

    fn worker_pids(&mut self) -> Vec<u32> {
        self.workers.iter().map(Worker::pid).collect()
    }

    fn stop(self) {}
}
