//! The bytes: frame limits, the length-delimited MessagePack codec, the
//! frame reader and writer both sides use, and how the Rust API encodes
//! payloads.

use std::marker::PhantomData;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

use super::frames::{FromWorker, ToWorker};

/// The default bound on one frame's body, in bytes (8 MiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Bytes a frame needs besides its payload (message tag, field names, ids,
/// timestamps, length prefixes), with room to spare: the largest envelope,
/// a `Request` with an attachment, takes about 100.
pub const FRAME_OVERHEAD: usize = 256;

/// The largest payload one frame carries, in both directions: a request's
/// payload, an answer's payload, an `Emit` payload (less its event name).
/// Both sides check it before sending: the supervisor refuses a larger
/// request with `PayloadTooLarge`, the SDK answers a larger response with
/// an `oversize` error. So a request of exactly this size can be echoed.
///
/// ```
/// use nanny_worker::protocol::{max_payload_len, DEFAULT_MAX_FRAME_LEN};
/// assert_eq!(max_payload_len(DEFAULT_MAX_FRAME_LEN), 8 * 1024 * 1024 - 256);
/// ```
pub const fn max_payload_len(max_frame_len: usize) -> usize {
    max_frame_len.saturating_sub(FRAME_OVERHEAD)
}

/// Encodes a user value the way the Rust API puts it in payloads:
/// MessagePack with named fields.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    // Room for a small payload at once: a `Vec` grown from empty byte by
    // byte reallocates several times before 100 bytes.
    let mut out = Vec::with_capacity(PAYLOAD_ROOM);
    rmp_serde::encode::write_named(&mut out, value)?;
    Ok(out)
}

/// The capacity [`encode_payload`] starts with.
const PAYLOAD_ROOM: usize = 128;

/// Decodes a payload written by [`encode_payload`] (or any MessagePack)
/// whose arrays, maps and extensions nest less than [`MAX_PAYLOAD_DEPTH`]
/// deep.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    decode_bounded(bytes, MAX_PAYLOAD_DEPTH)
}

/// The nesting of arrays, maps and extensions at which [`decode_payload`]
/// fails with `DepthLimitExceeded`.
///
/// MessagePack's own default is 1024, and serde walks a nested value by
/// recursion, even one it skips (an unknown field of a struct): in a debug
/// build that took about 3 KiB of stack per level, so 800 levels (a frame
/// of 800 bytes; 600 still passed) overflowed the 2 MiB stack of a tokio
/// worker thread and aborted the whole process. 256 levels take about
/// 800 KiB there.
pub const MAX_PAYLOAD_DEPTH: usize = 256;

/// The nesting at which a frame's MessagePack is refused (as
/// [`MAX_PAYLOAD_DEPTH`] for payloads). The deepest frame of the protocol
/// nests 8 levels (a `QueryAnswer` with a cluster's members); the rest is
/// room for fields added later. See [`MAX_PAYLOAD_DEPTH`] for why
/// there is a bound.
pub const MAX_FRAME_DEPTH: usize = 32;

/// `rmp_serde::from_slice` with a nesting bound of `depth`.
fn decode_bounded<T: DeserializeOwned>(bytes: &[u8], depth: usize) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(depth);
    T::deserialize(&mut de)
}

/// A [`tokio_serde`] codec for protocol frames: MessagePack with named
/// fields (maps), so that fields can be appended without breaking peers.
///
/// Frames are serialized into one buffer the codec keeps: each frame's
/// bytes are split off as a [`Bytes`] that the length-delimited layer
/// copies into its write buffer and drops, so the next frame finds the same
/// allocation free again ([`BytesMut::reserve`] reclaims it). Serializing
/// into a fresh `Vec` instead grew it by reallocation, field by field, on
/// every frame: 17 % of the supervisor's instructions at 256 outstanding
/// (BENCHMARKS.md, "The hot path").
#[derive(Debug)]
pub struct MsgPack<T> {
    buf: BytesMut,
    _marker: PhantomData<fn(T) -> T>,
}

/// Room reserved before each frame is serialized: every fixed-size frame
/// fits, and a payload frame grows the buffer at most once or twice.
const SERIALIZE_ROOM: usize = 256;

/// A frame larger than this does not leave its allocation behind in the
/// codec.
const KEEP_LIMIT: usize = 16 * 1024;

impl<T> Default for MsgPack<T> {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            _marker: PhantomData,
        }
    }
}

/// A message type of the protocol: [`ToWorker`] or [`FromWorker`], the
/// types a [`FrameReader`] and a [`FrameWriter`] carry. Sealed: its methods
/// are the hand-written encoding of the hot frames (`hot.rs`), which writes
/// the same bytes as serde.
pub trait Frame: Serialize + DeserializeOwned + sealed::Sealed {
    /// Writes `self` if it is a hot frame; false, with nothing written,
    /// for any other.
    #[doc(hidden)]
    fn encode_hot(&self, out: &mut BytesMut) -> bool;
    /// Reads a hot frame in the layout `encode_hot` writes; `None` for any
    /// other bytes (serde reads those).
    #[doc(hidden)]
    fn decode_hot(src: &[u8]) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ToWorker {}
    impl Sealed for super::FromWorker {}
}

impl Frame for ToWorker {
    fn encode_hot(&self, out: &mut BytesMut) -> bool {
        super::hot::encode_to_worker(self, out)
    }
    fn decode_hot(src: &[u8]) -> Option<Self> {
        super::hot::decode_to_worker(src)
    }
}

impl Frame for FromWorker {
    fn encode_hot(&self, out: &mut BytesMut) -> bool {
        super::hot::encode_from_worker(self, out)
    }
    fn decode_hot(src: &[u8]) -> Option<Self> {
        super::hot::decode_from_worker(src)
    }
}

impl<T: Frame> tokio_serde::Serializer<T> for MsgPack<T> {
    type Error = std::io::Error;

    fn serialize(self: Pin<&mut Self>, item: &T) -> Result<Bytes, Self::Error> {
        use bytes::BufMut;
        let buf = &mut self.get_mut().buf;
        buf.clear();
        buf.reserve(SERIALIZE_ROOM);
        if !item.encode_hot(buf) {
            if let Err(e) = rmp_serde::encode::write_named(&mut buf.writer(), item) {
                buf.clear();
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
        let frame = buf.split().freeze();
        if frame.len() > KEEP_LIMIT {
            // Freed with the frame: an idle link keeps no large buffer.
            *buf = BytesMut::new();
        }
        Ok(frame)
    }
}

impl<T: Frame> tokio_serde::Deserializer<T> for MsgPack<T> {
    type Error = std::io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> Result<T, Self::Error> {
        if let Some(frame) = T::decode_hot(src) {
            return Ok(frame);
        }
        decode_bounded(src, MAX_FRAME_DEPTH)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// The length-delimited codec both sides use, bounded to `max_frame_len`.
pub fn length_codec(max_frame_len: usize) -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// A framed reader of `T` messages over any byte source.
pub type FrameReader<R, T> = tokio_serde::SymmetricallyFramed<
    tokio_util::codec::FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    T,
    MsgPack<T>,
>;

/// A framed writer of `T` messages over any byte sink.
pub type FrameWriter<W, T> = tokio_serde::SymmetricallyFramed<
    tokio_util::codec::FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    T,
    MsgPack<T>,
>;

/// The buffer room a link reads into and writes from while it is busy
/// (tokio-util's own initial capacity). Readers and writers start with it
/// and keep it, grown, for good; a side with many idle links (the
/// supervisor) frees it between batches instead: [`take_read_room`] /
/// [`take_write_room`] before a batch, [`release_read_room`] /
/// [`release_write_room`] after it. That was 16 KiB of the supervisor's
/// memory per idle worker.
pub const LINK_BUFFER: usize = 8 * 1024;

/// Gives `reader` room to read a batch into (see [`LINK_BUFFER`]).
pub fn take_read_room<R, T>(reader: &mut FrameReader<R, T>) {
    reader.get_mut().read_buffer_mut().reserve(LINK_BUFFER);
}

/// Frees `reader`'s buffer if no partial frame is in it.
pub fn release_read_room<R, T>(reader: &mut FrameReader<R, T>) {
    let buffer = reader.get_mut().read_buffer_mut();
    if buffer.is_empty() {
        *buffer = BytesMut::new();
    }
}

/// Gives `writer` room to encode a batch into (see [`LINK_BUFFER`]).
pub fn take_write_room<W, T>(writer: &mut FrameWriter<W, T>) {
    writer.get_mut().write_buffer_mut().reserve(LINK_BUFFER);
}

/// Frees `writer`'s buffer if everything in it was written.
pub fn release_write_room<W, T>(writer: &mut FrameWriter<W, T>) {
    let buffer = writer.get_mut().write_buffer_mut();
    if buffer.is_empty() {
        *buffer = BytesMut::new();
    }
}

/// Wraps a reader into a [`FrameReader`].
pub fn frame_reader<R: tokio::io::AsyncRead, T>(io: R, max_frame_len: usize) -> FrameReader<R, T> {
    tokio_serde::SymmetricallyFramed::new(
        tokio_util::codec::FramedRead::new(io, length_codec(max_frame_len)),
        MsgPack::default(),
    )
}

/// Wraps a writer into a [`FrameWriter`].
pub fn frame_writer<W: tokio::io::AsyncWrite, T>(io: W, max_frame_len: usize) -> FrameWriter<W, T> {
    tokio_serde::SymmetricallyFramed::new(
        tokio_util::codec::FramedWrite::new(io, length_codec(max_frame_len)),
        MsgPack::default(),
    )
}

/// A [`FrameReader`] that holds no buffer until [`take_read_room`]: for
/// a side with many idle links (see [`LINK_BUFFER`]).
pub fn idle_frame_reader<R: tokio::io::AsyncRead, T>(io: R, max_frame_len: usize) -> FrameReader<R, T> {
    tokio_serde::SymmetricallyFramed::new(
        tokio_util::codec::FramedRead::with_capacity(io, length_codec(max_frame_len), 0),
        MsgPack::default(),
    )
}

/// A [`FrameWriter`] that holds no buffer until [`take_write_room`] (and
/// still writes out only once [`LINK_BUFFER`] bytes are fed): for a side
/// with many idle links.
pub fn idle_frame_writer<W: tokio::io::AsyncWrite, T>(io: W, max_frame_len: usize) -> FrameWriter<W, T> {
    let mut framed = tokio_util::codec::FramedWrite::with_capacity(io, length_codec(max_frame_len), 0);
    framed.set_backpressure_boundary(LINK_BUFFER);
    tokio_serde::SymmetricallyFramed::new(framed, MsgPack::default())
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};
    use uuid::Uuid;

    use super::*;
    use crate::protocol::{
        FromWorker, RequestFrame, SupervisorHello, ToWorker, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    };

    #[tokio::test]
    async fn frames_round_trip_both_ways() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut w: FrameWriter<_, ToWorker> = frame_writer(a, 1024);
        let mut r: FrameReader<_, ToWorker> = frame_reader(b, 1024);
        let frames = vec![
            ToWorker::Hello(SupervisorHello {
                version: PROTOCOL_VERSION,
                min_version: Some(MIN_PROTOCOL_VERSION),
                worker_id: 7,
                pulse_ms: 1000,
                max_frame_len: 1024,
                unhealthy_timeout_ms: None,
            }),
            ToWorker::Request(RequestFrame {
                id: Uuid::new_v4(),
                attempt: 1,
                created_at_ms: 5,
                payload: encode_payload(&("hi", 3u8)).unwrap(),
                attachment: None,
            }),
            ToWorker::SoftKill,
        ];
        for f in &frames {
            w.send(f.clone()).await.unwrap();
        }
        for f in frames {
            assert_eq!(r.next().await.unwrap().unwrap(), f);
        }
    }

    #[tokio::test]
    async fn oversize_frame_is_an_error_on_both_sides() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut w: FrameWriter<_, FromWorker> = frame_writer(a, 64);
        let big = FromWorker::Emit {
            event: "x".into(),
            payload: vec![0; 100],
        };
        assert!(w.send(big.clone()).await.is_err(), "sender enforces the bound");
        // A permissive sender against a strict reader: the reader refuses.
        let mut w: FrameWriter<_, FromWorker> = frame_writer(w.into_inner().into_inner(), 4096);
        let mut r: FrameReader<_, FromWorker> = frame_reader(b, 64);
        w.send(big).await.unwrap();
        assert!(r.next().await.unwrap().is_err(), "receiver enforces the bound");
    }

    #[tokio::test]
    async fn garbage_is_a_decode_error_not_a_panic() {
        use tokio::io::AsyncWriteExt;
        let (mut a, b) = tokio::net::UnixStream::pair().unwrap();
        let mut r: FrameReader<_, FromWorker> = frame_reader(b, 64);
        a.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await.unwrap();
        assert!(r.next().await.unwrap().is_err());
    }
}
