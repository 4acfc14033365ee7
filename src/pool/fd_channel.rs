//! [`FdChannelFlavor`]: how a pool's workers take descriptors (the fd
//! channel of the worker protocol, section 11 of `PROTOCOL.md`).

/// How the fd channel reaches a worker: the socket it is and the framing of
/// its messages. The messages themselves (a 21-byte tag, its data, one
/// descriptor) are the same in both; see `worker-sdk/PROTOCOL.md`, section 11.6 for
/// the Node.js flavour's wire format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FdChannelFlavor {
    /// A `SOCK_SEQPACKET` socketpair, its fd number in `NANNY_FD_CHANNEL`:
    /// one `sendmsg` per message (the Rust SDK, and any worker that can
    /// call `recvmsg`).
    #[default]
    #[serde(rename = "seqpacket")]
    SeqPacket,
    /// Node.js's own IPC channel: a `SOCK_STREAM` socketpair, its fd number
    /// in `NODE_CHANNEL_FD` (with `NODE_CHANNEL_SERIALIZATION_MODE=json`
    /// and `NANNY_NODE_CHANNEL=1`, and no `NANNY_FD_CHANNEL`), which a
    /// plain `node` opens by itself at start, so that a worker without a
    /// native addon receives descriptors (`process.on('message')`) and
    /// sends them (`process.send(msg, socket)`). Each message is one JSON
    /// line carrying the tag and data in base64, with its descriptor.
    ///
    /// libuv takes only stream sockets: a request whose attachment is
    /// anything else (a pipe, a file, a datagram socket) fails with
    /// [`Error::AttachmentNotPassable`](crate::Error::AttachmentNotPassable)
    /// and is never sent.
    #[serde(rename = "node")]
    Node,
}

impl FdChannelFlavor {
    /// The name `nanny.toml` uses: `"seqpacket"` or `"node"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SeqPacket => "seqpacket",
            Self::Node => "node",
        }
    }
}

impl std::fmt::Display for FdChannelFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
