//! A link socket split into halves that wake their process only for what
//! it waits for.
//!
//! Tokio registers a `UnixStream` for reading and writing at once, edge
//! triggered. On a Unix socket every read by the peer frees buffer space,
//! and the kernel then wakes every `epoll` waiter registered for
//! writability: so each frame a peer reads wakes the process that wrote
//! it, which finds nothing to do (no task waits to write) and sleeps
//! again. On a one-at-a-time round trip that doubles the wake-ups of both
//! processes (four instead of two), and on a virtual machine a wake-up of
//! an idle vCPU is most of a round trip's time (BENCHMARKS.md, "Quiet
//! sockets").
//!
//! [`split`] gives a [`QuietRead`], registered for readability only, and a
//! [`QuietWrite`] that writes straight to the socket and registers for
//! writability only while a write would block, until its next
//! [`poll_flush`](AsyncWrite::poll_flush) finds everything written. Each
//! half holds its own descriptor of the same socket (a `dup`), so `epoll`
//! keeps their interests apart.
//!
//! Dropping the write half shuts the socket down for writing, as tokio's
//! `OwnedWriteHalf` does: the peer reads end-of-file while the read half
//! still reads.
//!
//! [`QuietWrite::direct`] gives a [`DirectWrite`] of the write half's own
//! descriptor, for a sender that writes the socket itself while the task
//! owning the half is idle (the supervisor writing to an idle worker's
//! socket without waking the link's writer task).

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Splits a connected stream socket into its two quiet halves. Must be
/// called within a tokio runtime with I/O enabled.
pub fn split(stream: tokio::net::UnixStream) -> io::Result<(QuietRead, QuietWrite)> {
    split_std(stream.into_std()?)
}

/// [`split`] for a socket not yet registered with tokio (made
/// non-blocking here).
pub fn split_std(stream: UnixStream) -> io::Result<(QuietRead, QuietWrite)> {
    stream.set_nonblocking(true)?;
    let write = stream.try_clone()?;
    let read = register(stream, Interest::READABLE)?;
    Ok((
        QuietRead(read),
        QuietWrite {
            socket: Some(Arc::new(write)),
            waiting: None,
        },
    ))
}

/// Registers `socket` with the runtime for `interest` alone.
fn register(socket: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: the `AsyncFd` owns the socket, which only it closes, until
    // it is dropped (deregistering first); `as_raw_fd` always returns the
    // same number, and no `&mut` access to it is handed out.
    #[allow(unsafe_code)]
    unsafe {
        AsyncFd::register_with_interest(socket, interest).map_err(|e| e.into_parts().1)
    }
}

/// The read half: registered for readability only.
#[derive(Debug)]
pub struct QuietRead(AsyncFd<UnixStream>);

impl QuietRead {
    /// Ready once the socket may have bytes (or an end, or an error) to
    /// read; a read that then finds none clears it.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_ready(cx).map_ok(|_| ())
    }
}

impl AsyncRead for QuietRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.0.poll_read_ready(cx))?;
            let room = buf.remaining();
            match ready.try_io(|socket| read_into(socket.get_ref(), buf)) {
                Ok(Ok(n)) => {
                    // A short read of a stream socket emptied it: the next
                    // read waits for the next edge instead of first
                    // asking the kernel for an EAGAIN (what tokio's own
                    // sockets do).
                    if n > 0 && n < room {
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Would block: readiness cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// One `read(2)` into the unfilled part of `buf`, without initialising it
/// first (a `FramedRead` hands a fresh, uninitialised view of its spare
/// capacity to every read: zeroing it would cost a `memset` of the whole
/// room per read); the count read.
fn read_into(socket: &UnixStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the unfilled part is valid for writes of its length; only
    // the `n` bytes `read` wrote are then marked initialised and filled.
    #[allow(unsafe_code)]
    unsafe {
        let room = buf.unfilled_mut();
        let n = nix::libc::read(socket.as_raw_fd(), room.as_mut_ptr().cast(), room.len());
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

/// The write half: writes straight to the socket, and is registered for
/// writability only from a write that would block until a flush finds
/// the socket took everything.
#[derive(Debug)]
pub struct QuietWrite {
    /// `None` once shut down. Shared with the [`DirectWrite`]s, which keep
    /// the descriptor open (never reused under them) but not the socket
    /// writable: the shutdown happens here.
    socket: Option<Arc<UnixStream>>,
    /// The registration for writability, while a write waits for room.
    waiting: Option<AsyncFd<UnixStream>>,
}

impl QuietWrite {
    fn socket(&self) -> io::Result<&UnixStream> {
        self.socket
            .as_deref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "shut down for writing"))
    }

    /// A handle that writes to the same socket without waiting (`None`
    /// once shut down). Its writes and this half's go to one byte stream:
    /// the caller orders them (writes through the handle only while
    /// nothing of this half's is unwritten). Once this half is dropped or
    /// shut down, its writes fail (`EPIPE`).
    pub fn direct(&self) -> Option<DirectWrite> {
        self.socket.clone().map(DirectWrite)
    }

    /// Runs `write` until it does not block, waiting for room on a
    /// registration made at the first `WouldBlock`.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.waiting.is_none() {
                match write(self.socket()?) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let socket = self.socket()?.try_clone()?;
                        self.waiting = Some(register(socket, Interest::WRITABLE)?);
                    }
                    done => return Poll::Ready(done),
                }
            }
            let waiting = self.waiting.as_ref().expect("registered above");
            let mut ready = ready!(waiting.poll_write_ready(cx))?;
            match ready.try_io(|socket| write(socket.get_ref())) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for QuietWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here; what a flush does is end the interest in
    /// writability, so the peer's reads stop waking this process.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().waiting = None;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.waiting = None;
        if let Some(socket) = this.socket.take() {
            socket.shutdown(Shutdown::Write)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for QuietWrite {
    fn drop(&mut self) {
        self.waiting = None;
        if let Some(socket) = self.socket.take() {
            // The peer may be gone already; nothing to report then.
            let _ = socket.shutdown(Shutdown::Write);
        }
    }
}

/// Writes to a [`QuietWrite`]'s socket without registering anything: a
/// write that would block says so and leaves the waiting to the half
/// (see [`QuietWrite::direct`]).
#[derive(Debug, Clone)]
pub struct DirectWrite(Arc<UnixStream>);

impl DirectWrite {
    /// Writes what the socket takes of `buf` now: `WouldBlock` if nothing,
    /// retried on `EINTR`.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&*self.0).write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
        }
    }
}

#[cfg(test)]
#[path = "quiet_tests.rs"]
mod tests;
