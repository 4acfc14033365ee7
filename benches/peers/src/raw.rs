//! The raw baseline: length-prefixed frames over a Unix socketpair to each
//! worker process, blocking std I/O in the workers, no framework.
//!
//! The one-outstanding row is blocking I/O on both sides. The burst rows
//! drive both sockets from one thread with poll(2), so that neither side
//! can block writing while the other is blocked writing too. `BATCHED`
//! chooses the writes: one write of every frame the client has to send
//! (and one write per read in the worker), or one write per frame (a
//! socket that is full keeps its backlog until poll says it is writable).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::children::Worker;
use crate::frames::{frame, read_into, split, ReadBuf, HEADER};
use crate::report::Burst;
use crate::workloads::{timed, Peer, OUTSTANDING, SMALL, WARM_UP};

/// The raw peer; `BATCHED` picks the batched writes.
#[derive(Debug)]
pub struct Raw<const BATCHED: bool> {
    links: Vec<(Worker, UnixStream)>,
}

impl<const BATCHED: bool> Raw<BATCHED> {
    fn role() -> &'static str {
        if BATCHED {
            "raw-batched"
        } else {
            "raw"
        }
    }

    fn spawn() -> (Worker, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        (
            Worker::spawn(Self::role(), theirs).expect("spawn a raw worker"),
            ours,
        )
    }
}

/// Writes one frame of `payload` to `sock` and reads its answer.
fn ping(sock: &mut UnixStream, payload: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    sock.write_all(&frame(payload))?;
    let mut header = [0u8; HEADER];
    sock.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header) as usize;
    assert_eq!(len, payload.len(), "the answer is the echo");
    buf.resize(len, 0);
    sock.read_exact(buf)
}

impl<const BATCHED: bool> Peer for Raw<BATCHED> {
    fn start(workers: usize) -> Self {
        let mut links: Vec<_> = (0..workers).map(|_| Self::spawn()).collect();
        let (payload, mut buf) = ([7u8; SMALL], Vec::new());
        for (_, sock) in &mut links {
            sock.write_all(&frame(&payload)).expect("write");
        }
        for (_, sock) in &mut links {
            let mut header = [0u8; HEADER];
            sock.read_exact(&mut header).expect("an answer");
            buf.resize(u32::from_le_bytes(header) as usize, 0);
            sock.read_exact(&mut buf).expect("an answer");
        }
        Self { links }
    }

    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration> {
        let (payload, mut buf) = ([7u8; SMALL], Vec::new());
        let n = self.links.len();
        timed(WARM_UP, run_for, |i| {
            ping(&mut self.links[i % n].1, &payload, &mut buf).expect("round trip")
        })
    }

    fn burst(&mut self, size: usize, run_for: Duration) -> Burst {
        let socks: Vec<&UnixStream> = self.links.iter().map(|(_, s)| s).collect();
        let burst = pipeline(&socks, size, run_for, BATCHED).expect("burst");
        for s in socks {
            s.set_nonblocking(false).expect("blocking again");
        }
        burst
    }

    fn kill_one(&mut self) {
        let (old, _) = self.links.remove(0);
        old.kill().expect("SIGKILL and reap");
        let (worker, mut sock) = Self::spawn();
        ping(&mut sock, &[7u8; SMALL], &mut Vec::new()).expect("the replacement answers");
        self.links.insert(0, (worker, sock));
    }

    fn worker_pids(&mut self) -> Vec<u32> {
        self.links.iter().map(|(w, _)| w.pid()).collect()
    }

    fn stop(self) {}
}

/// One socket's side of a burst.
struct Link<'a> {
    sock: &'a UnixStream,
    /// Bytes not yet written, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    inbuf: ReadBuf,
    in_flight: usize,
    answered: u64,
}

impl Link<'_> {
    /// Sends `n` frames: appended to the backlog if batched or if one is
    /// waiting, else one write(2) per frame.
    fn send(&mut self, n: usize, frame: &[u8], batched: bool) -> io::Result<()> {
        self.in_flight += n;
        for _ in 0..n {
            if batched || self.sent < self.out.len() {
                self.out.extend_from_slice(frame);
                continue;
            }
            match self.sock.write(frame) {
                Ok(done) => self.out.extend_from_slice(&frame[done..]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.out.extend_from_slice(frame),
                Err(e) => return Err(e),
            }
        }
        self.flush()
    }

    /// Writes the backlog until done or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.sock.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // Drop what is written once it is at least what is left, so the
        // backlog stays bounded by the window at an amortised copy per byte.
        if self.sent >= self.out.len() - self.sent {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Reads once; returns how many answers (each checked) it completed.
    fn receive(&mut self, size: usize) -> io::Result<usize> {
        let mut sock = self.sock;
        match read_into(&mut sock, &mut self.inbuf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut k = 0;
        let done = split(self.inbuf.filled(), |len| {
            assert_eq!(len, size, "the answer is the echo");
            k += 1;
        });
        self.inbuf.consume(done);
        self.in_flight -= k;
        self.answered += k as u64;
        Ok(k)
    }
}

/// [`OUTSTANDING`] frames of `size` bytes in flight over `socks` (an equal
/// window each), refilled as answers come, until `run_for` has passed and
/// every answer is in.
fn pipeline(socks: &[&UnixStream], size: usize, run_for: Duration, batched: bool) -> io::Result<Burst> {
    let frame = frame(&vec![7u8; size]);
    let window = OUTSTANDING / socks.len();
    let mut links = Vec::new();
    for sock in socks {
        sock.set_nonblocking(true)?;
        let (out, inbuf) = (Vec::new(), ReadBuf::default());
        links.push(Link {
            sock,
            out,
            sent: 0,
            inbuf,
            in_flight: 0,
            answered: 0,
        });
    }
    let start = Instant::now();
    for link in &mut links {
        link.send(window, &frame, batched)?;
    }
    while links.iter().any(|l| l.in_flight > 0) {
        let mut fds: Vec<PollFd<'_>> = links
            .iter()
            .map(|l| {
                let out = if l.sent < l.out.len() {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::empty()
                };
                PollFd::new(l.sock.as_fd(), PollFlags::POLLIN | out)
            })
            .collect();
        poll(&mut fds, PollTimeout::NONE)?;
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let refill = start.elapsed() < run_for;
        for (link, ready) in links.iter_mut().zip(ready) {
            if ready.contains(PollFlags::POLLOUT) {
                link.flush()?;
            }
            if ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
                let k = link.receive(size)?;
                if refill && k > 0 {
                    link.send(k, &frame, batched)?;
                }
            }
        }
    }
    let per_worker = links.iter().map(|l| l.answered).collect();
    Ok(Burst {
        per_worker,
        elapsed: start.elapsed(),
    })
}
