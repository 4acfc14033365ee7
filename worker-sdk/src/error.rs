//! The SDK's error type.

/// Why a worker could not connect, send, or keep serving.
///
/// `Display` describes one level; the cause, if any, is in
/// [`source()`](std::error::Error::source). The wording is not part of the
/// API: match on the variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process was not started by a nanny supervisor: [`ENV_FD`] is not set.
    ///
    /// [`ENV_FD`]: crate::protocol::ENV_FD
    #[error(
        "not running under a nanny supervisor ({} is not set)",
        crate::protocol::ENV_FD
    )]
    NotAWorker,
    /// An environment variable the supervisor sets is missing or malformed.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The supervisor does not accept this worker's protocol version.
    #[error("protocol version mismatch: worker speaks {ours}, supervisor accepts {theirs_min}..={theirs}")]
    Version {
        /// [`PROTOCOL_VERSION`](crate::protocol::PROTOCOL_VERSION) of this crate.
        ours: u32,
        /// The newest version the supervisor speaks (its hello's `version`).
        theirs: u32,
        /// The oldest version it accepts (its hello's `min_version`).
        theirs_min: u32,
    },
    /// An I/O error on the supervisor's socket.
    #[error("i/o error on the supervisor link")]
    Io(#[from] std::io::Error),
    /// The supervisor sent something this worker cannot accept.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value could not be encoded as MessagePack.
    #[error("could not encode a payload")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A payload could not be decoded into the requested type.
    #[error("could not decode a payload")]
    Decode(#[from] rmp_serde::decode::Error),
    /// An encoded payload does not fit in one frame.
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded payload's size in bytes.
        len: usize,
        /// The largest payload that fits in a frame.
        max: usize,
    },
    /// The writer queue has no room: the socket to the supervisor is not
    /// keeping up. Nothing was queued; try again later.
    #[error("the queue to the supervisor is full")]
    QueueFull,
    /// The link to the supervisor is gone (end of file on the socket): the
    /// supervisor exited or dropped this worker. The worker should exit.
    #[error("the supervisor closed the link")]
    Disconnected,
    /// The supervisor announced a hard kill; SIGKILL follows.
    #[error("hard-killed by the supervisor")]
    HardKilled,
    /// This worker has no fd channel ([`ENV_FD_CHANNEL`] was not set), so
    /// it cannot pass a response stream.
    ///
    /// [`ENV_FD_CHANNEL`]: crate::protocol::ENV_FD_CHANNEL
    #[error(
        "this worker has no fd channel ({} is not set)",
        crate::protocol::ENV_FD_CHANNEL
    )]
    NoFdChannel,
    /// [`Worker::serve`](crate::Worker::serve) is already running on this
    /// worker (from another clone of the handle).
    #[error("this worker is already being served")]
    AlreadyServing,
    /// [`Worker::incoming`](crate::Worker::incoming) was called while an
    /// [`Incoming`](crate::Incoming) of this worker lives (one at a time).
    #[error("this worker already takes connections")]
    AlreadyListening,
}
