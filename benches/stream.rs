//! Attachments end to end, with real worker processes.
//!
//! ```text
//! cargo bench --bench stream
//! cargo bench --bench stream -- --warm-up-time 1 --measurement-time 5   # quicker
//! ```
//!
//! * `stream/through_worker/256 MiB`: 256 MiB sent with
//!   `Attachment::stream` to a worker that reads them to the end (and
//!   discards them) and answers with the count. Supervisor pump → socketpair
//!   → worker process (`ChunkReader`) → answer. criterion reports bytes/s.
//! * `stream/socketpair_copy/256 MiB`: the baseline, in the same run: the
//!   same source, copied by one task into a tokio `UnixStream` pair (64 KiB
//!   reads, `write_all`) and read to the end by another (64 KiB reads), in
//!   this process. The target is a `through_worker` figure of at least 80 %
//!   of this one.
//! * `attach_cost/one_outstanding/{none, unix_socket, unix_socket_with_socketpair}`:
//!   one request at a time to 2 workers, the same 100-byte payload and the
//!   same handler (`req.socket()`, then answer), without an attachment and
//!   with an attached Unix socket. Every variant makes the same socketpair
//!   off the clock and drops what it keeps of it off the clock; `none` just
//!   does not attach it, so only the handover differs. `unix_socket` times
//!   `enqueue_with` alone; `unix_socket_with_socketpair` also times
//!   `UnixStream::pair()` and `Attachment::unix`. The target is an added
//!   cost under 20 µs. The bench prints per-request percentiles after each
//!   line, as `enqueue` does.
//! * `attach_cost/interleaved`: the same two variants in blocks of none,
//!   none, unix, unix, so that each is timed after its own kind and after
//!   the other, under the same drifting load. An attached request leaves
//!   kernel work behind (the release of sockets, epoll items) that slows
//!   the request after it; "in a row" (each kind after its own kind) counts
//!   it where it belongs, "on the request itself" does not.
//! * `attach_cost/fd_pass_in_process/unix_socket`: the floor of a socket
//!   handover, in this process, with no supervisor or worker: `sendmsg` with
//!   `SCM_RIGHTS`, `recvmsg`, a tokio socket made of it, dropped.
//!   `attach_cost/fd_pass_syscalls/unix_socket`: the same system calls
//!   alone, blocking, with no runtime.
//!
//! `NANNY_BENCH_SKIP_INTERLEAVED=1` skips the interleaved comparison, so that
//! a run filtered to one bench (e.g. under `strace -f -c`) does that bench's
//! requests only.
//!
//! Runtimes and workers as in `benches/enqueue.rs`: a multi-thread tokio
//! runtime on the supervisor side; the workers are this bench binary
//! (self-fork, checked before criterion sees any argument), each on a
//! current-thread runtime.

use std::cell::RefCell;
use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use nanny::{Attachment, EnqueueOptions, Pool, Supervisor, WorkerSpec};
use nanny_worker::fdpass::FdChannel;
use nanny_worker::protocol::{FdTag, FD_KIND_ATTACHMENT};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::runtime::Runtime;

mod support;
const WORKERS: usize = 2;
const STREAM_LEN: u64 = 256 << 20;
/// The read size on every reading side, and the copy size of the baseline
/// (the supervisor's pump writes chunks of this size too).
const BUF: usize = 64 * 1024;

/// What a request asks of the bench worker.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    /// Read the stream attachment to its end; answer the byte count.
    Drain,
    /// Take the socket, if any (and close it); answer. The payload pads the
    /// request to about 100 bytes.
    Socket(#[serde(with = "serde_bytes")] Vec<u8>),
}

fn main() {
    if nanny_worker::is_worker() {
        worker();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    stream(&mut c);
    attach_cost(&mut c);
    c.final_summary();
}

fn worker() {
    support::serve("stream worker", |mut req| async move {
        match req.data::<Job>()? {
            Job::Drain => {
                let mut stream = req.stream().ok_or("no stream")?;
                let mut buf = vec![0u8; BUF];
                let mut total = 0u64;
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                req.respond(&total)?;
            }
            Job::Socket(_) => {
                drop(req.socket());
                req.respond(&())?;
            }
        }
        Ok(())
    });
}

/// `len` bytes of a fixed pattern; each read is one `memcpy`.
struct Source {
    left: u64,
}

static PATTERN: [u8; BUF] = [0x5a; BUF];

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(BUF as u64) as usize;
        buf.put_slice(&PATTERN[..n]);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn start(rt: &Runtime) -> Supervisor {
    rt.block_on(
        Supervisor::builder()
            .pool(Pool::default_pool(WorkerSpec::current_exe().expect("current exe")).workers(WORKERS))
            .start(),
    )
    .expect("supervisor starts")
}

/// The baseline: `len` bytes through a socketpair, one task copying in,
/// another reading out.
async fn socketpair_copy(len: u64) -> u64 {
    let (mut a, mut b) = tokio::net::UnixStream::pair().expect("socketpair");
    let writer = tokio::spawn(async move {
        let mut source = Source { left: len };
        let mut buf = vec![0u8; BUF];
        loop {
            let n = source.read(&mut buf).await.expect("source");
            if n == 0 {
                break;
            }
            a.write_all(&buf[..n]).await.expect("write");
        }
        a.shutdown().await.expect("shutdown");
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            let n = b.read(&mut buf).await.expect("read");
            if n == 0 {
                return total;
            }
            total += n as u64;
        }
    });
    writer.await.expect("writer");
    reader.await.expect("reader")
}

fn stream(c: &mut Criterion) {
    let rt = multi_thread();
    let supervisor = start(&rt);
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(STREAM_LEN));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let label = "256 MiB";
    group.bench_function(BenchmarkId::new("through_worker", label), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let supervisor = supervisor.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let options =
                        EnqueueOptions::new().attach(Attachment::stream(Source { left: STREAM_LEN }));
                    let response = supervisor
                        .enqueue_with(&Job::Drain, options)
                        .await
                        .expect("answer");
                    assert_eq!(response.data::<u64>().expect("a count"), STREAM_LEN);
                }
                start.elapsed()
            }
        });
    });
    group.bench_function(BenchmarkId::new("socketpair_copy", label), |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(socketpair_copy(STREAM_LEN).await, STREAM_LEN);
            }
            start.elapsed()
        });
    });
    group.finish();
    rt.block_on(supervisor.soft_kill());
}

#[derive(Clone, Copy)]
enum Attach {
    None,
    Unix,
    UnixWithSocketpair,
}

fn attach_cost(c: &mut Criterion) {
    let rt = multi_thread();
    let supervisor = start(&rt);
    // About 100 bytes encoded, as in `enqueue`'s round trip.
    let job = Job::Socket(vec![7u8; 90]);
    let mut group = c.benchmark_group("attach_cost");
    group.throughput(Throughput::Elements(1));
    for (name, attach) in [
        ("none", Attach::None),
        ("unix_socket", Attach::Unix),
        ("unix_socket_with_socketpair", Attach::UnixWithSocketpair),
    ] {
        let each = RefCell::new(Vec::new());
        group.bench_function(BenchmarkId::new("one_outstanding", name), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (supervisor, job, each) = (&supervisor, &job, &each);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, peer) = one(supervisor, job, attach).await;
                        drop(peer);
                        total += took;
                        each.borrow_mut().push(took);
                    }
                    total
                }
            });
        });
        print_percentiles(
            &format!("attach_cost/one_outstanding/{name}"),
            &mut each.into_inner(),
        );
    }
    // The floor: the same socket handed over within this process, with no
    // supervisor, worker or frame: `sendmsg` with SCM_RIGHTS on an fd
    // channel, `recvmsg`, a tokio socket made of it (`FIONBIO`, epoll
    // registration), then dropped (deregistration, close), as a worker does.
    let (a, b) = FdChannel::pair().expect("fd channel");
    let (a, b) = rt.block_on(async { (FdChannel::new(a).unwrap(), FdChannel::new(b).unwrap()) });
    group.bench_function(BenchmarkId::new("fd_pass_in_process", "unix_socket"), |bench| {
        bench.to_async(&rt).iter_custom(|iters| {
            let (a, b) = (&a, &b);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
                    theirs.set_nonblocking(true).expect("nonblocking");
                    let tag = FdTag {
                        id: uuid::Uuid::nil(),
                        attempt: 1,
                        kind: FD_KIND_ATTACHMENT,
                    };
                    let t = Instant::now();
                    a.send(tag, theirs.as_fd()).await.expect("send");
                    drop(theirs);
                    let fd = b.recv().await.expect("recv").expect("a descriptor").fd;
                    let socket = std::os::unix::net::UnixStream::from(fd);
                    socket.set_nonblocking(true).expect("nonblocking");
                    drop(tokio::net::UnixStream::from_std(socket).expect("a tokio socket"));
                    total += t.elapsed();
                    drop(ours);
                }
                total
            }
        });
    });
    // The kernel's part of it: the same three system calls (and the close of
    // the received copy), blocking, with no runtime.
    group.bench_function(BenchmarkId::new("fd_pass_syscalls", "unix_socket"), |bench| {
        use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let (a, b) = FdChannel::pair().expect("fd channel");
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
                let t = Instant::now();
                let data = [0u8; 21];
                let fds = [theirs.as_raw_fd()];
                sendmsg::<()>(
                    a.as_raw_fd(),
                    &[io::IoSlice::new(&data)],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .expect("sendmsg");
                drop(theirs);
                let mut buf = [0u8; 64];
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2]);
                let mut iov = [io::IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<()>(
                    b.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .expect("recvmsg");
                for c in msg.cmsgs().expect("cmsgs") {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for fd in fds {
                            // SAFETY: just received, owned by nobody else.
                            #[allow(unsafe_code)]
                            drop(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                total += t.elapsed();
                drop(ours);
            }
            total
        });
    });
    group.finish();
    // Sequential benchmarks drift with the host's load: the same comparison,
    // interleaved request by request, gives the added cost more robustly.
    if std::env::var_os("NANNY_BENCH_SKIP_INTERLEAVED").is_some() {
        rt.block_on(supervisor.soft_kill());
        return;
    }
    // Blocks of none, none, unix, unix: each kind is timed both after its
    // own kind and after the other. An attached request leaves work behind
    // that slows the request after it (the kernel's share of a socket's
    // release, above all); comparing each kind after its own kind counts
    // that work where it belongs, which alternating pairs would not.
    let mut after = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    rt.block_on(async {
        for _ in 0..INTERLEAVED / 4 {
            for (kind, previous) in [(0, 1), (0, 0), (1, 0), (1, 1)] {
                let attach = if kind == 0 { Attach::None } else { Attach::Unix };
                after[kind][previous].push(one(&supervisor, &job, attach).await.0);
            }
        }
    });
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let [[nn, nu], [un, uu]] = &mut after;
    let (nn, nu, un, uu) = (median(nn), median(nu), median(un), median(uu));
    println!(
        "attach_cost/interleaved ({INTERLEAVED} requests, p50 in µs): none after none {nn:.1}, none after unix_socket {nu:.1}, unix_socket after none {un:.1}, unix_socket after unix_socket {uu:.1}; added cost in a row {:+.1} µs (unix_socket after unix_socket - none after none), on the request itself {:+.1} µs (unix_socket after none - none after none), left to the next request {:+.1} µs (none after unix_socket - none after none)",
        uu - nn,
        un - nn,
        nu - nn,
    );
    rt.block_on(supervisor.soft_kill());
}

/// Requests of the interleaved comparison, in blocks of 4.
const INTERLEAVED: usize = 40_000;

/// One request; returns the time taken and the sockets the caller drops off
/// the clock (our end; for `None` the unattached other end too).
///
/// Our end stays a std socket, out of the runtime: registered, its hang-up
/// when the worker closes the other end would wake the runtime, a cost of
/// this bench and not of the attachment.
async fn one(
    supervisor: &Supervisor,
    job: &Job,
    attach: Attach,
) -> (Duration, Vec<std::os::unix::net::UnixStream>) {
    let pair = || {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        (
            ours,
            tokio::net::UnixStream::from_std(theirs).expect("a tokio socket"),
        )
    };
    let (t, options, peer) = match attach {
        // The same socketpair as `Unix`, made and dropped off the clock but
        // not attached: both variants pay for a socket's life, and only the
        // handover differs.
        Attach::None => {
            let (ours, theirs) = pair();
            let theirs = theirs.into_std().expect("a std socket");
            (Instant::now(), EnqueueOptions::new(), vec![ours, theirs])
        }
        Attach::Unix => {
            let (ours, theirs) = pair();
            let attachment = Attachment::unix(theirs).expect("attachment");
            (
                Instant::now(),
                EnqueueOptions::new().attach(attachment),
                vec![ours],
            )
        }
        Attach::UnixWithSocketpair => {
            let t = Instant::now();
            let (ours, theirs) = pair();
            let attachment = Attachment::unix(theirs).expect("attachment");
            (t, EnqueueOptions::new().attach(attachment), vec![ours])
        }
    };
    let response = supervisor.enqueue_with(job, options).await.expect("answer");
    let took = t.elapsed();
    black_box(response.raw().len());
    (took, peer)
}

/// Prints per-request latency percentiles of `each`.
fn print_percentiles(name: &str, each: &mut [Duration]) {
    if each.is_empty() {
        return;
    }
    each.sort_unstable();
    let at = |q: f64| each[((each.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: per request p50 {:.1?} p90 {:.1?} p99 {:.1?} max {:.1?} ({} requests)",
        at(0.5),
        at(0.9),
        at(0.99),
        each[each.len() - 1],
        each.len()
    );
}
