//! A worker's fd channel as its reader and writer tasks use it: one type,
//! [`Channel`], over the two transports of [`FdChannelFlavor`].
//!
//! The messages are the same in both (section 11 of `PROTOCOL.md`): a
//! 21-byte [`FdTag`], its data (an inline request frame, a connection's
//! or a broadcast's map; nothing from a worker) and exactly one
//! descriptor. What differs is how they cross:
//!
//! * **`SeqPacket`** — [`FdChannel`] as is: one `sendmsg` / `recvmsg` per
//!   message on a `SOCK_SEQPACKET` socketpair. The Rust SDK's channel and
//!   the default; [`Channel`] adds one `match` to it, nothing else.
//! * **`Node`** — [`NodeChannel`]: Node.js's own IPC channel, a
//!   `SOCK_STREAM` socketpair that `node` opens by itself at start
//!   (`NODE_CHANNEL_FD`), in its `json` serialization: one JSON line per
//!   message, the tag and data in base64, the descriptor in the same
//!   `sendmsg`. Node acknowledges every descriptor with a line of its own
//!   and waits for our acknowledgement of each one it sends; lines are
//!   reassembled from the byte stream and each received descriptor is
//!   paired with the line it came with. See `worker-sdk/PROTOCOL.md`, section 11.6.
//!
//! What the Node transport adds, and the callers see:
//!
//! * its sends check the descriptor first: libuv takes only stream
//!   sockets ([`node::check_passable`]); anything else is an
//!   [`InvalidInput`](std::io::ErrorKind::InvalidInput) error and nothing
//!   is written (the supervisor task checks attachments itself before it
//!   queues them, so that the request fails with a typed error);
//! * it owes Node an acknowledgement for every descriptor it received:
//!   [`Channel::settle`] writes them, and the reader calls it after each
//!   batch it forwarded (a no-op for `SeqPacket`);
//! * a send is not cancel safe once its first byte is written (a line cut
//!   short would corrupt the stream); the writer never cancels one.
//!
//! Malformed input is an [`InvalidData`](std::io::ErrorKind::InvalidData)
//! error from either transport, which the reader turns into the worker's
//! protocol error, as before.

mod lines;
pub(crate) mod node;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use nanny_worker::fdpass::{FdChannel, FdMessage};
use nanny_worker::protocol::FdTag;

pub(crate) use node::NodeChannel;

use crate::health::WorkerId;
use crate::FdChannelFlavor;

/// One worker's fd channel, of either flavour.
#[derive(Debug)]
pub(crate) enum Channel {
    /// `SOCK_SEQPACKET`, one message per `sendmsg`.
    SeqPacket(FdChannel),
    /// Node.js's IPC channel: JSON lines on a `SOCK_STREAM` socket. Boxed:
    /// it is several times the size of the other, which every worker's
    /// channel would otherwise take.
    Node(Box<NodeChannel>),
}

impl Channel {
    /// Wraps our end of a worker's fd channel of `flavor`; call it from
    /// within the runtime.
    pub(crate) fn new(flavor: FdChannelFlavor, fd: OwnedFd, worker: WorkerId) -> io::Result<Self> {
        Ok(match flavor {
            FdChannelFlavor::SeqPacket => Self::SeqPacket(FdChannel::new(fd)?),
            FdChannelFlavor::Node => Self::Node(Box::new(NodeChannel::new(fd, worker)?)),
        })
    }

    /// A connected pair for a worker of `flavor`, both ends close-on-exec:
    /// ours first, then the child's.
    pub(crate) fn pair(flavor: FdChannelFlavor) -> io::Result<(OwnedFd, OwnedFd)> {
        match flavor {
            FdChannelFlavor::SeqPacket => FdChannel::pair(),
            FdChannelFlavor::Node => NodeChannel::pair(),
        }
    }

    /// Sends `fd` with its tag and `data` after it, as one message.
    pub(crate) async fn send_with(&self, tag: FdTag, fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
        match self {
            Self::SeqPacket(c) => c.send_with(tag, fd, data).await,
            Self::Node(c) => c.send_with(tag, fd, data).await,
        }
    }

    /// The next message if the runtime has seen the channel readable
    /// ([`FdChannel::try_recv`]).
    pub(crate) fn try_recv(&self) -> io::Result<Option<FdMessage>> {
        match self {
            Self::SeqPacket(c) => c.try_recv(),
            Self::Node(c) => c.try_recv(),
        }
    }

    /// The next message with a read now, whatever the runtime has seen
    /// ([`FdChannel::recv_now`]).
    pub(crate) fn recv_now(&self) -> io::Result<Option<FdMessage>> {
        match self {
            Self::SeqPacket(c) => c.recv_now(),
            Self::Node(c) => c.recv_now(),
        }
    }

    /// Ready once a message (or end of file) may be waiting
    /// ([`FdChannel::poll_readable`]); wakes the task that polled it last.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::SeqPacket(c) => c.poll_readable(cx),
            Self::Node(c) => c.poll_readable(cx),
        }
    }

    /// Writes what the transport owes the worker for the messages received
    /// so far: Node's acknowledgements. Nothing for `SeqPacket`.
    pub(crate) async fn settle(&self) -> io::Result<()> {
        match self {
            Self::SeqPacket(_) => Ok(()),
            Self::Node(c) => c.settle().await,
        }
    }
}
