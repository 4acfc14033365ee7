//! [`NodeChannel`]: the fd channel of a Node.js worker, spoken on Node's
//! own IPC channel (see the module docs of [`super`] and
//! `worker-sdk/PROTOCOL.md`, section 11.6).
//!
//! One socket, two writers: the writer task's `NODE_HANDLE` lines and the
//! reader task's acknowledgements. An async lock gives each line whole to
//! one of them (a line cut by another would corrupt the stream). Reading
//! is the reader task's alone; its state sits behind a plain mutex that no
//! `await` holds.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use nanny_worker::fdpass::{recv_with_fds, FdMessage, Recvd};
use nanny_worker::protocol::{FdTag, FD_MESSAGE_MAX};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    getsockname, getsockopt, sendmsg, socketpair, sockopt, AddressFamily, ControlMessage, MsgFlags, SockFlag,
    SockType, SockaddrLike, SockaddrStorage,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::lines::{handle_line, Inbox, ACK_LINE, LINE_MAX};
use crate::health::WorkerId;

/// The variable Node reads its IPC channel's fd number from.
pub(crate) const ENV_NODE_CHANNEL_FD: &str = "NODE_CHANNEL_FD";
/// Node's serialization of that channel; always `json` (lines we parse).
pub(crate) const ENV_NODE_SERIALIZATION: &str = "NODE_CHANNEL_SERIALIZATION_MODE";
/// Tells the worker SDK that the IPC channel is nanny's fd channel: `1`.
pub(crate) const ENV_NANNY_NODE_CHANNEL: &str = "NANNY_NODE_CHANNEL";

/// Our end of a Node.js worker's IPC channel.
#[derive(Debug)]
pub(crate) struct NodeChannel {
    io: AsyncFd<OwnedFd>,
    /// Whose channel (for the logs).
    worker: WorkerId,
    /// One whole line at a time on the socket.
    writing: tokio::sync::Mutex<()>,
    reading: Mutex<Inbox>,
    /// Descriptors sent, for the log of a lost one.
    sent: AtomicU64,
}

impl NodeChannel {
    /// Wraps our end (from [`pair`](Self::pair)), non-blocking.
    pub(crate) fn new(fd: OwnedFd, worker: WorkerId) -> io::Result<Self> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an `OwnedFd` is an open descriptor that it alone closes; the
        // `AsyncFd` owns it until it is dropped, `as_raw_fd` always returns
        // the same number, and no `&mut` access to it is ever handed out.
        #[allow(unsafe_code)]
        let io = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }?;
        Ok(Self {
            io,
            worker,
            writing: tokio::sync::Mutex::new(()),
            reading: Mutex::new(Inbox::default()),
            sent: AtomicU64::new(0),
        })
    }

    /// A connected pair of `AF_UNIX` `SOCK_STREAM` sockets, close-on-exec.
    pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
        Ok(socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?)
    }

    /// Sends `fd` with `tag` and `data` as one `NODE_HANDLE` line. An
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) error, and nothing
    /// written, if the message is over [`FD_MESSAGE_MAX`] or `fd` is not a
    /// socket libuv takes ([`check_passable`]).
    pub(crate) async fn send_with(&self, tag: FdTag, fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
        let len = FdTag::LEN + data.len();
        if len > FD_MESSAGE_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an fd channel message of {len} bytes, over the maximum of {FD_MESSAGE_MAX}"),
            ));
        }
        check_passable(fd).map_err(|found| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{found}: not for a Node.js worker"),
            )
        })?;
        let line = handle_line(tag, data);
        let _turn = self.writing.lock().await;
        self.write_all(&line, Some(fd)).await?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Acknowledges the `NODE_HANDLE` lines read so far (Node sends its
    /// next descriptor only then).
    pub(crate) async fn settle(&self) -> io::Result<()> {
        let owed = std::mem::take(&mut self.inbox().owed);
        if owed == 0 {
            return Ok(());
        }
        let acks = ACK_LINE.repeat(owed);
        let _turn = self.writing.lock().await;
        self.write_all(&acks, None).await
    }

    /// As [`FdChannel::try_recv`](nanny_worker::fdpass::FdChannel::try_recv):
    /// reads only once the runtime has seen the socket readable.
    pub(crate) fn try_recv(&self) -> io::Result<Option<FdMessage>> {
        self.recv(|buf| {
            self.io
                .try_io(Interest::READABLE, |s| recv_with_fds(s.as_fd(), buf))
        })
    }

    /// As [`FdChannel::recv_now`](nanny_worker::fdpass::FdChannel::recv_now).
    pub(crate) fn recv_now(&self) -> io::Result<Option<FdMessage>> {
        self.recv(|buf| recv_with_fds(self.io.get_ref().as_fd(), buf))
    }

    /// Ready once the socket may be readable; wakes the task that polled
    /// it last.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_read_ready(cx).map_ok(drop)
    }

    /// The next message: from the lines already read, else after reads
    /// (`read` fills the buffer) until one is whole or the socket would
    /// block.
    fn recv(&self, mut read: impl FnMut(&mut [u8]) -> io::Result<Recvd>) -> io::Result<Option<FdMessage>> {
        let mut inbox = self.inbox();
        let mut chunk = [0u8; LINE_MAX];
        loop {
            let (acks, nacks) = (inbox.acks, inbox.nacks);
            let next = inbox.next_message();
            if inbox.nacks > nacks {
                tracing::warn!(
                    worker = %self.worker,
                    lost = inbox.nacks,
                    sent = self.sent.load(Ordering::Relaxed),
                    "the Node.js worker lost a descriptor (NODE_HANDLE_NACK)"
                );
            }
            if inbox.acks > acks {
                tracing::trace!(worker = %self.worker, acks = inbox.acks, "descriptors acknowledged");
            }
            if let Some(message) = next? {
                return Ok(Some(message));
            }
            if inbox.eof {
                return Ok(None);
            }
            let got = read(&mut chunk)?;
            if let Some(reason) = got.truncated {
                inbox.clear();
                let n = got.fds.len();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("node channel: {reason}; closed {n} descriptor(s)"),
                ));
            }
            if got.len == 0 && got.fds.is_empty() {
                // A partial line at the end is a worker that died writing it.
                inbox.eof = true;
                inbox.clear();
                continue;
            }
            inbox.push(&chunk[..got.len], got.fds)?;
        }
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // A panic while reading cannot leave the inbox half-updated in a way
        // that matters more than the panic itself.
        self.reading.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `bytes` whole, `fd` with the first `sendmsg`. Node pairs a
    /// descriptor with the line it came with, so the line should go in
    /// that one `sendmsg`: on Linux it does (a non-blocking Unix stream
    /// socket takes a write of a few KiB whole or not at all); a partial
    /// write is finished all the same.
    async fn write_all(&self, mut bytes: &[u8], mut fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self
                .io
                .async_io(Interest::WRITABLE, |sock| send_once(sock.as_fd(), bytes, fd))
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            if fd.is_some() && n < bytes.len() {
                tracing::warn!(worker = %self.worker, n, len = bytes.len(), "node channel: a line split");
            }
            bytes = &bytes[n..];
            fd = None;
        }
        Ok(())
    }
}

/// One `sendmsg` of `bytes`, with `fd` in `SCM_RIGHTS` if given.
fn send_once(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let fds = fd.map(|fd| [fd.as_raw_fd()]);
    let cmsg: Vec<ControlMessage<'_>> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Whether libuv takes `fd` as a handle: an `AF_INET`, `AF_INET6` or
/// `AF_UNIX` `SOCK_STREAM` socket (connected or listening). Otherwise
/// what it is, in words. Two syscalls (`SO_TYPE`, `getsockname`); an
/// `fstat` more to describe a descriptor that is no socket.
pub(crate) fn check_passable(fd: BorrowedFd<'_>) -> Result<(), String> {
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(SockType::Datagram) => return Err("a datagram socket".into()),
        Ok(SockType::SeqPacket) => return Err("a seqpacket socket".into()),
        Ok(other) => return Err(format!("a socket of type {other:?}")),
        Err(Errno::ENOTSOCK) => return Err(describe_file(fd)),
        Err(e) => return Err(format!("a descriptor whose type is unknown ({e})")),
    }
    match getsockname::<SockaddrStorage>(fd.as_raw_fd()).map(|a| a.family()) {
        Ok(Some(AddressFamily::Inet | AddressFamily::Inet6 | AddressFamily::Unix)) => Ok(()),
        Ok(Some(family)) => Err(format!("a stream socket of family {family:?}")),
        Ok(None) => Err("a stream socket of an unknown family".into()),
        Err(e) => Err(format!("a socket whose address is unknown ({e})")),
    }
}

/// What a descriptor that is no socket is: a pipe, a file…
fn describe_file(fd: BorrowedFd<'_>) -> String {
    use nix::sys::stat::{fstat, SFlag};
    let Ok(st) = fstat(fd) else {
        return "a descriptor that is no socket".into();
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    match kind {
        SFlag::S_IFIFO => "a pipe",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFDIR => "a directory",
        _ => "a descriptor that is no socket",
    }
    .into()
}
