//! The fd channel: file descriptors passed between a supervisor and one
//! worker, one per message, each with an [`FdTag`] naming the attempt it
//! belongs to.
//!
//! The channel is a `SOCK_SEQPACKET` Unix socketpair, separate from the
//! framed control socket (a buffered frame reader would swallow ancillary
//! data). Every message is one [`FdTag`] ([`FdTag::LEN`] bytes), optionally
//! followed by an inline request frame (at most [`FD_MESSAGE_MAX`] bytes in
//! all), plus exactly one descriptor in `SCM_RIGHTS`. Received descriptors
//! are close-on-exec (`MSG_CMSG_CLOEXEC`). A message that breaks these rules
//! is an [`InvalidData`](io::ErrorKind::InvalidData) error on the receiving
//! side; the descriptors that came with it are closed, and the channel stays
//! usable.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use std::os::fd::AsFd;
//! use nanny_worker::fdpass::FdChannel;
//! use nanny_worker::protocol::{FdTag, FD_KIND_ATTACHMENT};
//!
//! let (a, b) = FdChannel::pair()?;
//! let (a, b) = (FdChannel::new(a)?, FdChannel::new(b)?);
//! let (file, _) = std::os::unix::net::UnixStream::pair()?;
//! let tag = FdTag { id: uuid::Uuid::new_v4(), attempt: 1, kind: FD_KIND_ATTACHMENT };
//! a.send(tag, file.as_fd()).await?;
//! drop(file); // the sender closes its copy
//! let message = b.recv().await?.expect("not at end of file");
//! assert_eq!(message.tag, tag);
//! assert!(message.frame.is_empty());
//! # drop(message.fd); Ok(()) }
//! ```

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::protocol::{FdTag, FD_MESSAGE_MAX};

/// One message received on an fd channel.
#[derive(Debug)]
pub struct FdMessage {
    /// Which attempt the descriptor belongs to, and what it is.
    pub tag: FdTag,
    /// The descriptor, close-on-exec.
    pub fd: OwnedFd,
    /// The bytes after the tag: empty, or an inline request frame (a
    /// MessagePack [`RequestFrame`](crate::protocol::RequestFrame); see
    /// [`FD_MESSAGE_MAX`]).
    pub frame: Vec<u8>,
}

/// One end of an fd channel, usable from async code.
///
/// [`send`](Self::send) and [`recv`](Self::recv) take `&self`, so one task
/// can send while another receives (share it in an `Arc`).
pub struct FdChannel {
    io: AsyncFd<OwnedFd>,
}

impl fmt::Debug for FdChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdChannel")
            .field("fd", &self.io.get_ref().as_raw_fd())
            .finish()
    }
}

impl AsFd for FdChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl FdChannel {
    /// Wraps one end of a `SOCK_SEQPACKET` Unix socket (e.g. from
    /// [`pair`](Self::pair)) and makes it non-blocking. Call it from within
    /// a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an `OwnedFd` is an open descriptor that it alone closes; the
        // `AsyncFd` owns it until it is dropped, `as_raw_fd` always returns
        // the same number, and no `&mut` access to it is ever handed out.
        #[allow(unsafe_code)]
        let io = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }?;
        Ok(Self { io })
    }

    /// A connected pair of `SOCK_SEQPACKET` Unix sockets, both close-on-exec
    /// (clear the flag on the end a child process should inherit).
    pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
        Ok(socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?)
    }

    /// Sends `fd` with its tag. The caller keeps its own copy of `fd` and
    /// should close it once this returns (the receiver has its own).
    ///
    /// Fails with [`BrokenPipe`](io::ErrorKind::BrokenPipe) when the other
    /// end is closed (no `SIGPIPE` is raised).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is sent whole or not at all.
    pub async fn send(&self, tag: FdTag, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.send_with(tag, fd, &[]).await
    }

    /// Sends `fd` with its tag and `frame` after it, in one message: an
    /// inline request frame for an attachment (see [`FdMessage::frame`]).
    /// An [`InvalidInput`](io::ErrorKind::InvalidInput) error if the
    /// message would be longer than [`FD_MESSAGE_MAX`]. Otherwise as
    /// [`send`](Self::send).
    pub async fn send_with(&self, tag: FdTag, fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<()> {
        let head = tag.to_bytes();
        let len = head.len() + frame.len();
        if len > FD_MESSAGE_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an fd channel message of {len} bytes, over the maximum of {FD_MESSAGE_MAX}"),
            ));
        }
        let fds = [fd.as_raw_fd()];
        let sent = self
            .io
            .async_io(Interest::WRITABLE, |sock| loop {
                let iov = [IoSlice::new(&head), IoSlice::new(frame)];
                let iov = if frame.is_empty() { &iov[..1] } else { &iov[..] };
                let cmsg = [ControlMessage::ScmRights(&fds)];
                match sendmsg::<()>(sock.as_raw_fd(), iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                    Err(Errno::EINTR) => continue,
                    other => return other.map_err(io::Error::from),
                }
            })
            .await?;
        if sent != len {
            // Cannot happen on a SOCK_SEQPACKET socket, which sends whole messages.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the fd channel took {sent} of {len} bytes"),
            ));
        }
        Ok(())
    }

    /// Receives the next message; `Ok(None)` at end of file (the other end
    /// is closed).
    ///
    /// A message that is not one tag, an optional frame and exactly one
    /// descriptor (too short, longer than [`FD_MESSAGE_MAX`], truncated
    /// control data, no descriptor or several) is an
    /// [`InvalidData`](io::ErrorKind::InvalidData) error; whatever
    /// descriptors came with it are closed, and the next call reads the next
    /// message.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is received whole or not at all.
    pub async fn recv(&self) -> io::Result<Option<FdMessage>> {
        let received = self
            .io
            .async_io(Interest::READABLE, |sock| recv_raw(sock.as_fd()))
            .await?;
        received.into_message()
    }

    /// Receives the next message if the runtime has seen the channel
    /// readable: as [`recv`](Self::recv), but a
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) error when there is none,
    /// or when the runtime has not noticed one yet (then it calls no
    /// `recvmsg` at all). A `WouldBlock` clears the readiness that
    /// [`readable`](Self::readable) waits for, so call them in turn.
    pub fn try_recv(&self) -> io::Result<Option<FdMessage>> {
        self.io
            .try_io(Interest::READABLE, |sock| recv_raw(sock.as_fd()))?
            .into_message()
    }

    /// One non-blocking `recvmsg` now, whatever the runtime has seen: for a
    /// caller that knows a message was sent before something it has just
    /// read elsewhere (so it is in the channel), and must take it at once.
    /// A [`WouldBlock`](io::ErrorKind::WouldBlock) error if the channel is
    /// empty. It leaves the readiness [`readable`](Self::readable) waits for
    /// alone (at worst that wakes a waiter whose `try_recv` finds nothing).
    pub fn recv_now(&self) -> io::Result<Option<FdMessage>> {
        recv_raw(self.io.get_ref().as_fd())?.into_message()
    }

    /// Waits until a message (or end of file) may be waiting; then call
    /// [`try_recv`](Self::try_recv) until it says
    /// [`WouldBlock`](io::ErrorKind::WouldBlock).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        // Dropping the guard keeps the readiness: `try_recv` clears it.
        self.io.readable().await.map(drop)
    }

    /// As [`readable`](Self::readable), polled: ready once a message (or
    /// end of file) may be waiting. Only the task that polled it last is
    /// woken, so one task at a time may wait on it this way. It costs a
    /// waiting task no future of its own.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Dropping the guard keeps the readiness: `try_recv` clears it.
        self.io.poll_read_ready(cx).map_ok(drop)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What one `recvmsg` into a fixed-size message buffer brought.
struct Received {
    data: [u8; FD_MESSAGE_MAX],
    /// Bytes of `data` received, its descriptors and truncation.
    got: Recvd,
}

impl Received {
    /// Checks the message's shape; `None` at end of file.
    fn into_message(self) -> io::Result<Option<FdMessage>> {
        let Received {
            data,
            got: Recvd { len, truncated, fds },
        } = self;
        if let Some(reason) = truncated {
            return Err(invalid(format!("{reason}; closed {} descriptor(s)", fds.len())));
        }
        if len == 0 && fds.is_empty() {
            return Ok(None);
        }
        let tag = data
            .get(..FdTag::LEN)
            .filter(|_| len >= FdTag::LEN)
            .and_then(FdTag::from_bytes);
        match (tag, <[OwnedFd; 1]>::try_from(fds)) {
            (Some(tag), Ok([fd])) => Ok(Some(FdMessage {
                tag,
                fd,
                frame: data[FdTag::LEN..len].to_vec(),
            })),
            (None, fds) => {
                let n = fds.map_or_else(|v| v.len(), |_| 1);
                Err(invalid(format!(
                    "an fd channel message of {len} bytes, shorter than a {}-byte tag; closed {n} descriptor(s)",
                    FdTag::LEN
                )))
            }
            (Some(_), Err(fds)) => Err(invalid(format!(
                "an fd channel message with {} descriptors, not 1; closed them",
                fds.len()
            ))),
        }
    }
}

/// One seqpacket `recvmsg`; every descriptor received is owned before it returns.
fn recv_raw(sock: BorrowedFd<'_>) -> io::Result<Received> {
    let mut data = [0u8; FD_MESSAGE_MAX];
    let got = recv_with_fds(sock, &mut data)?;
    Ok(Received { data, got })
}

/// What [`recv_with_fds`] received.
#[derive(Debug)]
pub struct Recvd {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Why the data or the control message was truncated (`MSG_TRUNC`,
    /// `MSG_CTRUNC`), if it was.
    pub truncated: Option<&'static str>,
    /// The descriptors that came (close-on-exec), owned at once so that
    /// every path closes them.
    pub fds: Vec<OwnedFd>,
}

/// One `recvmsg` on `sock` (blocking or not, as the socket is) into `data`, with
/// `MSG_CMSG_CLOEXEC` and room for two descriptors (one is expected; two
/// shows as "not exactly one"; more sets `MSG_CTRUNC`, and the kernel
/// closes those that do not fit, while those that fit are still returned
/// here, owned). For another framing over the same rules, such as the
/// supervisor's Node.js channel (a stream socket); [`FdChannel`] uses it
/// for its messages. `EINTR` is retried.
pub fn recv_with_fds(sock: BorrowedFd<'_>, data: &mut [u8]) -> io::Result<Recvd> {
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 2]);
    let (bytes, flags, fds) = loop {
        let mut iov = [IoSliceMut::new(data)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => msg,
        };
        // `None` on MSG_CTRUNC: nix will not walk a truncated buffer.
        let fds: Option<Vec<RawFd>> = msg.cmsgs().ok().map(|cmsgs| {
            cmsgs
                .flat_map(|c| match c {
                    ControlMessageOwned::ScmRights(fds) => fds,
                    _ => Vec::new(),
                })
                .collect()
        });
        break (msg.bytes, msg.flags, fds);
    };
    // The descriptors that fit a truncated buffer are ours all the same.
    let fds = fds.unwrap_or_else(|| rights_in_truncated(&cmsg_buf));
    let fds: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| {
            // SAFETY: the kernel has just installed these descriptors in this
            // process for this `recvmsg` call; nothing else knows their numbers,
            // so this is their only owner.
            #[allow(unsafe_code)]
            unsafe {
                OwnedFd::from_raw_fd(fd)
            }
        })
        .collect();
    let truncated = if flags.contains(MsgFlags::MSG_CTRUNC) {
        Some("an fd channel message with truncated control data (too many descriptors)")
    } else if flags.contains(MsgFlags::MSG_TRUNC) {
        Some("an fd channel message longer than the maximum")
    } else {
        None
    };
    Ok(Recvd {
        len: bytes,
        truncated,
        fds,
    })
}

/// The descriptors in the `SCM_RIGHTS` messages of a control buffer the
/// kernel truncated (`MSG_CTRUNC`). Linux writes well-formed headers for
/// what it kept; the buffer was zeroed, so a zero length ends the walk.
fn rights_in_truncated(buf: &[u8]) -> Vec<RawFd> {
    use nix::libc::{cmsghdr, SCM_RIGHTS, SOL_SOCKET};
    const WORD: usize = std::mem::size_of::<usize>();
    let align = |n: usize| (n + WORD - 1) & !(WORD - 1);
    let header = align(std::mem::size_of::<cmsghdr>());
    let int = std::mem::size_of::<i32>();
    let mut fds = Vec::new();
    let mut at = 0;
    while at + header <= buf.len() {
        let word = |i: usize| -> Option<usize> {
            let bytes = buf.get(at + i..at + i + WORD)?;
            Some(usize::from_ne_bytes(bytes.try_into().ok()?))
        };
        let int_at = |i: usize| -> Option<i32> {
            let bytes = buf.get(at + i..at + i + int)?;
            Some(i32::from_ne_bytes(bytes.try_into().ok()?))
        };
        // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }
        let (Some(len), Some(level), Some(kind)) = (word(0), int_at(WORD), int_at(WORD + int)) else {
            break;
        };
        if len < header {
            break;
        }
        let end = (at + len).min(buf.len());
        if level == SOL_SOCKET && kind == SCM_RIGHTS {
            fds.extend(
                buf[at + header..end]
                    .chunks_exact(int)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default())),
            );
        }
        at += align(len);
    }
    fds.retain(|&fd| fd >= 0);
    fds
}
