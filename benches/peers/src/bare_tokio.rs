//! Bare tokio: the raw peer's processes and frames on tokio, no framework.
//! The caller runs on a multi-thread runtime and writes and reads the
//! sockets itself; each worker runs a current-thread runtime (see
//! [`crate::frames::serve_tokio`]). In the burst rows each socket has a
//! writer task that coalesces every frame owed into one write, and a
//! reader task that counts the answers and hands the writer new credit.

use std::os::unix::net::UnixStream as StdStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::children::Worker;
use crate::frames::{frame, push_frame, split, ReadBuf, HEADER};
use crate::report::Burst;
use crate::workloads::{Peer, OUTSTANDING, SMALL, WARM_UP};

/// The bare-tokio peer.
#[derive(Debug)]
pub struct BareTokio {
    rt: Runtime,
    links: Vec<(Worker, Option<UnixStream>)>,
}

/// Runs `fut` as a task of `rt` (not on the calling thread) and returns its output.
pub fn on<T: Send + 'static>(rt: &Runtime, fut: impl std::future::Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(fut)).expect("the task")
}

fn spawn(rt: &Runtime) -> (Worker, Option<UnixStream>) {
    let (ours, theirs) = StdStream::pair().expect("socketpair");
    let worker = Worker::spawn("tokio", theirs).expect("spawn a tokio worker");
    ours.set_nonblocking(true).expect("nonblocking");
    let _guard = rt.enter();
    (worker, Some(UnixStream::from_std(ours).expect("register")))
}

/// Writes one frame of `payload` and reads its answer.
async fn ping(sock: &mut UnixStream, payload: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
    sock.write_all(&frame(payload)).await?;
    let mut header = [0u8; HEADER];
    sock.read_exact(&mut header).await?;
    let len = u32::from_le_bytes(header) as usize;
    assert_eq!(len, payload.len(), "the answer is the echo");
    buf.resize(len, 0);
    sock.read_exact(buf).await.map(drop)
}

impl BareTokio {
    /// Takes the sockets out for a task; [`Self::put`] gives them back.
    fn take(&mut self) -> Vec<UnixStream> {
        self.links
            .iter_mut()
            .map(|(_, s)| s.take().expect("socket"))
            .collect()
    }

    fn put(&mut self, socks: Vec<UnixStream>) {
        for ((_, slot), sock) in self.links.iter_mut().zip(socks) {
            *slot = Some(sock);
        }
    }
}

impl Peer for BareTokio {
    fn start(workers: usize) -> Self {
        let rt = crate::workloads::runtime(false);
        let mut peer = Self {
            links: (0..workers).map(|_| spawn(&rt)).collect(),
            rt,
        };
        let socks = peer.take();
        let socks = on(&peer.rt, async move {
            let mut pings = Vec::new();
            for mut sock in socks {
                pings.push(tokio::spawn(async move {
                    ping(&mut sock, &[7u8; SMALL], &mut Vec::new())
                        .await
                        .expect("an answer");
                    sock
                }));
            }
            let mut socks = Vec::new();
            for p in pings {
                socks.push(p.await.expect("ping"));
            }
            socks
        });
        peer.put(socks);
        peer
    }

    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration> {
        let mut socks = self.take();
        let (socks, each) = on(&self.rt, async move {
            let (payload, mut buf, n) = ([7u8; SMALL], Vec::new(), socks.len());
            for i in 0..WARM_UP {
                ping(&mut socks[i % n], &payload, &mut buf)
                    .await
                    .expect("round trip");
            }
            let (start, mut each) = (Instant::now(), Vec::with_capacity(100_000));
            for i in 0.. {
                if start.elapsed() >= run_for {
                    break;
                }
                let t = Instant::now();
                ping(&mut socks[i % n], &payload, &mut buf)
                    .await
                    .expect("round trip");
                each.push(t.elapsed());
            }
            (socks, each)
        });
        self.put(socks);
        each
    }

    fn burst(&mut self, size: usize, run_for: Duration) -> Burst {
        let socks = self.take();
        let window = OUTSTANDING / socks.len();
        let (socks, burst) = on(&self.rt, async move {
            let start = Instant::now();
            let tasks: Vec<_> = socks
                .into_iter()
                .map(|s| tokio::spawn(pipeline(s, size, window, start + run_for)))
                .collect();
            let (mut socks, mut per_worker) = (Vec::new(), Vec::new());
            for t in tasks {
                let (sock, answered) = t.await.expect("pipeline");
                socks.push(sock);
                per_worker.push(answered);
            }
            (
                socks,
                Burst {
                    per_worker,
                    elapsed: start.elapsed(),
                },
            )
        });
        self.put(socks);
        burst
    }

    fn kill_one(&mut self) {
        let (old, _) = self.links.remove(0);
        old.kill().expect("SIGKILL and reap");
        let (worker, sock) = spawn(&self.rt);
        let mut sock = sock.expect("socket");
        let sock = on(&self.rt, async move {
            ping(&mut sock, &[7u8; SMALL], &mut Vec::new())
                .await
                .expect("the replacement answers");
            sock
        });
        self.links.insert(0, (worker, Some(sock)));
    }

    fn worker_pids(&mut self) -> Vec<u32> {
        self.links.iter().map(|(w, _)| w.pid()).collect()
    }

    fn stop(self) {}
}

/// What a socket's writer and reader share.
#[derive(Debug, Default)]
struct Credit {
    owed: AtomicUsize,
    done: AtomicBool,
    wake: Notify,
}

/// `window` frames of `size` bytes in flight on `sock` until `until`, then
/// until the last answer; returns the socket and the answers counted.
async fn pipeline(sock: UnixStream, size: usize, window: usize, until: Instant) -> (UnixStream, u64) {
    let (mut rd, mut wr) = sock.into_split();
    let credit = Arc::new(Credit {
        owed: AtomicUsize::new(window),
        ..Credit::default()
    });
    let writer = {
        let credit = credit.clone();
        tokio::spawn(async move {
            let (payload, mut out) = (vec![7u8; size], Vec::new());
            loop {
                let n = credit.owed.swap(0, Ordering::AcqRel);
                if n > 0 {
                    out.clear();
                    (0..n).for_each(|_| push_frame(&mut out, &payload));
                    wr.write_all(&out).await.expect("write");
                } else if credit.done.load(Ordering::Acquire) {
                    return wr;
                } else {
                    credit.wake.notified().await;
                }
            }
        })
    };
    let (mut buf, mut in_flight, mut answered) = (ReadBuf::default(), window, 0u64);
    while in_flight > 0 {
        let n = rd.read(buf.spare()).await.expect("read");
        assert!(n > 0, "the worker hung up");
        buf.fill(n);
        let mut k = 0;
        let done = split(buf.filled(), |len| {
            assert_eq!(len, size, "the answer is the echo");
            k += 1;
        });
        buf.consume(done);
        (in_flight, answered) = (in_flight - k, answered + k as u64);
        if k > 0 && Instant::now() < until {
            in_flight += k;
            credit.owed.fetch_add(k, Ordering::AcqRel);
            credit.wake.notify_one();
        }
    }
    credit.done.store(true, Ordering::Release);
    credit.wake.notify_one();
    let wr = writer.await.expect("writer");
    (rd.reunite(wr).expect("the same socket"), answered)
}
