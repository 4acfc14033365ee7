//! The fd channel's message tag: which attempt the one descriptor in a
//! `SCM_RIGHTS` message belongs to, and what kind it is. The channel itself
//! is the socket named by [`ENV_FD_CHANNEL`](super::ENV_FD_CHANNEL).

use uuid::Uuid;

use super::frames::AttemptKey;

/// Fd channel message kind: a request's attachment (supervisor → worker).
pub const FD_KIND_ATTACHMENT: u8 = 1;
/// The longest fd channel message: a tag ([`FdTag::LEN`] bytes) and, for an
/// attachment, the request frame inline (MessagePack of
/// [`RequestFrame`](super::RequestFrame), without a length prefix) when it
/// fits. A request whose frame does not fit sends the tag alone, and the
/// frame on the framed socket.
pub const FD_MESSAGE_MAX: usize = 4096;
/// Fd channel message kind: a response stream (worker → supervisor).
pub const FD_KIND_RESPONSE_STREAM: u8 = 2;

/// Fd channel message kind (version 3): a connection accepted by one of
/// the supervisor's listeners (supervisor → worker). The tag's `id` and
/// `attempt` name the connection and the offer; the data after the tag is
/// a MessagePack [`ConnectionFrame`](super::ConnectionFrame). The worker
/// answers `ConnectionTaken` or `ConnectionBounced`.
pub const FD_KIND_CONNECTION: u8 = 3;

/// Fd channel message kind (version 3): a broadcast that carries a
/// descriptor, e.g. a listening socket the workers share (supervisor →
/// worker, any worker that declared
/// [`CAP_FD_CHANNEL`](super::CAP_FD_CHANNEL)). The tag's `id` names the
/// broadcast (the worker only logs it) and its `attempt` is 0; the data
/// after the tag is a MessagePack [`BroadcastFrame`](super::BroadcastFrame),
/// always inline. Nothing is answered.
pub const FD_KIND_BROADCAST: u8 = 4;

/// The data part of one fd channel message: which attempt the single
/// `SCM_RIGHTS` descriptor belongs to. 21 bytes on the wire: the request id
/// (16), the attempt (u32 big-endian), the kind (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdTag {
    /// Request id.
    pub id: Uuid,
    /// Attempt.
    pub attempt: u32,
    /// [`FD_KIND_ATTACHMENT`], [`FD_KIND_RESPONSE_STREAM`],
    /// [`FD_KIND_CONNECTION`] or [`FD_KIND_BROADCAST`].
    pub kind: u8,
}

impl FdTag {
    /// Encoded length.
    pub const LEN: usize = 21;

    /// The tag of a descriptor of `kind` for the attempt `key`.
    pub const fn new(key: AttemptKey, kind: u8) -> Self {
        Self {
            id: key.id,
            attempt: key.attempt,
            kind,
        }
    }

    /// The attempt the descriptor belongs to.
    pub const fn key(&self) -> AttemptKey {
        AttemptKey::new(self.id, self.attempt)
    }

    /// Encodes the tag.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..16].copy_from_slice(self.id.as_bytes());
        out[16..20].copy_from_slice(&self.attempt.to_be_bytes());
        out[20] = self.kind;
        out
    }

    /// Decodes a tag; `None` unless `bytes` is exactly [`Self::LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        Some(Self {
            id: Uuid::from_bytes(bytes[..16].try_into().ok()?),
            attempt: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            kind: bytes[20],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_21_bytes_and_names_its_attempt() {
        let key = AttemptKey::new(Uuid::from_bytes([9; 16]), 0x0102_0304);
        let tag = FdTag::new(key, FD_KIND_RESPONSE_STREAM);
        let bytes = tag.to_bytes();
        assert_eq!(&bytes[..16], &[9; 16]);
        assert_eq!(&bytes[16..], &[1, 2, 3, 4, FD_KIND_RESPONSE_STREAM]);
        let back = FdTag::from_bytes(&bytes).unwrap();
        assert_eq!((back, back.key()), (tag, key));
        assert_eq!(FdTag::from_bytes(&bytes[..20]), None);
    }
}
