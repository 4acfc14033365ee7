//! The two frames every request crosses, by hand: a `Request` without an
//! attachment (supervisor → worker) and a successful `Response` without a
//! stream (worker → supervisor).
//!
//! The bytes are exactly those serde's MessagePack encoder writes for the
//! same frame (named fields, in declaration order; the tests compare the
//! two on random frames), so the wire format does not change and a peer in
//! another language sees nothing new. Decoding takes that one layout; any
//! other (fields in another order, an extra field, an attachment, an error
//! outcome) is left to serde, which reads every valid frame. Through serde
//! these two frames cost about 1 000 instructions each to write and 1 400
//! to read, for five fields: the field names go through the generic
//! serializer one call at a time, and each name read back is checked as
//! UTF-8 and matched as a string (BENCHMARKS.md, "The hot path").

use bytes::{BufMut, BytesMut};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use super::frames::{FromWorker, Outcome, RequestFrame, RequestHead, ToWorker};

/// Writes `frame` if it is one of the two hot frames; false (nothing
/// written) for any other.
pub(super) fn encode_to_worker(frame: &ToWorker, out: &mut BytesMut) -> bool {
    let ToWorker::Request(r) = frame else {
        return false;
    };
    if r.attachment.is_some() {
        return false;
    }
    encode_request(
        &RequestHead {
            id: r.id,
            attempt: r.attempt,
            created_at_ms: r.created_at_ms,
        },
        &r.payload,
        out,
    );
    true
}

/// Writes a `Request` without an attachment from its parts, the payload
/// borrowed: the bytes of [`encode_to_worker`] for the same frame.
pub(super) fn encode_request(head: &RequestHead, payload: &[u8], out: &mut BytesMut) {
    out.reserve(64 + payload.len());
    variant(out, "Request", 4);
    key(out, "id");
    bin(out, head.id.as_bytes());
    key(out, "attempt");
    uint(out, head.attempt.into());
    key(out, "created_at_ms");
    uint(out, head.created_at_ms);
    key(out, "payload");
    bin(out, payload);
}

/// Writes `frame` if it is one of the two hot frames; false (nothing
/// written) for any other.
pub(super) fn encode_from_worker(frame: &FromWorker, out: &mut BytesMut) -> bool {
    let FromWorker::Response {
        id,
        attempt,
        outcome: Outcome::Ok(data),
        stream: false,
    } = frame
    else {
        return false;
    };
    out.reserve(64 + data.len());
    variant(out, "Response", 3);
    key(out, "id");
    bin(out, id.as_bytes());
    key(out, "attempt");
    uint(out, (*attempt).into());
    key(out, "outcome");
    variant_header(out, "Ok");
    bin(out, data);
    true
}

/// Reads a hot `Request` in the layout [`encode_to_worker`] writes.
pub(super) fn decode_to_worker(src: &[u8]) -> Option<ToWorker> {
    let mut r = Reader(src);
    r.variant("Request", 4)?;
    r.key("id")?;
    let id = r.uuid()?;
    r.key("attempt")?;
    let attempt = u32::try_from(r.uint()?).ok()?;
    r.key("created_at_ms")?;
    let created_at_ms = r.uint()?;
    r.key("payload")?;
    let payload = r.bin()?.to_vec();
    r.end()?;
    Some(ToWorker::Request(RequestFrame {
        id,
        attempt,
        created_at_ms,
        payload,
        attachment: None,
    }))
}

/// Reads a hot `Response` in the layout [`encode_from_worker`] writes.
pub(super) fn decode_from_worker(src: &[u8]) -> Option<FromWorker> {
    let mut r = Reader(src);
    r.variant("Response", 3)?;
    r.key("id")?;
    let id = r.uuid()?;
    r.key("attempt")?;
    let attempt = u32::try_from(r.uint()?).ok()?;
    r.key("outcome")?;
    r.variant_header("Ok")?;
    let data = ByteBuf::from(r.bin()?.to_vec());
    r.end()?;
    Some(FromWorker::Response {
        id,
        attempt,
        outcome: Outcome::Ok(data),
        stream: false,
    })
}

// MessagePack markers (the specification's names).
const FIXMAP: u8 = 0x80;
const FIXSTR: u8 = 0xa0;
const BIN8: u8 = 0xc4;
const BIN16: u8 = 0xc5;
const BIN32: u8 = 0xc6;
const UINT8: u8 = 0xcc;
const UINT16: u8 = 0xcd;
const UINT32: u8 = 0xce;
const UINT64: u8 = 0xcf;

/// An externally tagged variant with `fields` named fields: a map of one
/// entry, the variant's name to a map of the fields.
fn variant(out: &mut BytesMut, name: &str, fields: u8) {
    variant_header(out, name);
    out.put_u8(FIXMAP | fields);
}

/// The map of one entry and the variant's name; its value follows.
fn variant_header(out: &mut BytesMut, name: &str) {
    out.put_u8(FIXMAP | 1);
    key(out, name);
}

/// A short string (every name here is under 32 bytes).
fn key(out: &mut BytesMut, name: &str) {
    debug_assert!(name.len() < 32);
    out.put_u8(FIXSTR | name.len() as u8);
    out.put_slice(name.as_bytes());
}

/// An unsigned integer in its shortest form.
fn uint(out: &mut BytesMut, v: u64) {
    match v {
        0..=0x7f => out.put_u8(v as u8),
        0x80..=0xff => {
            out.put_u8(UINT8);
            out.put_u8(v as u8);
        }
        0x100..=0xffff => {
            out.put_u8(UINT16);
            out.put_u16(v as u16);
        }
        0x1_0000..=0xffff_ffff => {
            out.put_u8(UINT32);
            out.put_u32(v as u32);
        }
        _ => {
            out.put_u8(UINT64);
            out.put_u64(v);
        }
    }
}

/// Bytes with the shortest length header.
fn bin(out: &mut BytesMut, bytes: &[u8]) {
    let len = bytes.len();
    if let Ok(n) = u8::try_from(len) {
        out.put_u8(BIN8);
        out.put_u8(n);
    } else if let Ok(n) = u16::try_from(len) {
        out.put_u8(BIN16);
        out.put_u16(n);
    } else {
        out.put_u8(BIN32);
        // Frames are bounded far below 4 GiB (`max_frame_len` is a u32).
        out.put_u32(len as u32);
    }
    out.put_slice(bytes);
}

/// A cursor over one frame; every method is `None` when the bytes are not
/// what it expects, so the frame goes to serde.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.byte()? == b).then_some(())
    }

    fn key(&mut self, name: &str) -> Option<()> {
        self.expect(FIXSTR | name.len() as u8)?;
        (self.take(name.len())? == name.as_bytes()).then_some(())
    }

    fn variant_header(&mut self, name: &str) -> Option<()> {
        self.expect(FIXMAP | 1)?;
        self.key(name)
    }

    fn variant(&mut self, name: &str, fields: u8) -> Option<()> {
        self.variant_header(name)?;
        self.expect(FIXMAP | fields)
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0..=0x7f => Some(b.into()),
            UINT8 => self.be(1),
            UINT16 => self.be(2),
            UINT32 => self.be(4),
            UINT64 => self.be(8),
            _ => None,
        }
    }

    fn bin(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            BIN8 => self.be(1)?,
            BIN16 => self.be(2)?,
            BIN32 => self.be(4)?,
            _ => return None,
        };
        self.take(usize::try_from(len).ok()?)
    }

    fn uuid(&mut self) -> Option<Uuid> {
        let bytes = self.bin()?;
        Uuid::from_slice(bytes).ok()
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde_bytes_of<T: serde::Serialize>(frame: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(frame).unwrap()
    }

    fn request(id: u128, attempt: u32, created_at_ms: u64, payload: Vec<u8>) -> ToWorker {
        ToWorker::Request(RequestFrame {
            id: Uuid::from_u128(id),
            attempt,
            created_at_ms,
            payload,
            attachment: None,
        })
    }

    fn response(id: u128, attempt: u32, data: Vec<u8>) -> FromWorker {
        FromWorker::Response {
            id: Uuid::from_u128(id),
            attempt,
            outcome: Outcome::Ok(ByteBuf::from(data)),
            stream: false,
        }
    }

    proptest! {
        #[test]
        fn a_request_is_byte_for_byte_what_serde_writes(
            id: u128, attempt: u32, at: u64, payload in proptest::collection::vec(any::<u8>(), 0..70_000)
        ) {
            let frame = request(id, attempt, at, payload);
            let mut out = BytesMut::new();
            prop_assert!(encode_to_worker(&frame, &mut out));
            prop_assert_eq!(&out[..], &serde_bytes_of(&frame)[..]);
            prop_assert_eq!(decode_to_worker(&out), Some(frame));
        }

        #[test]
        fn a_response_is_byte_for_byte_what_serde_writes(
            id: u128, attempt: u32, data in proptest::collection::vec(any::<u8>(), 0..70_000)
        ) {
            let frame = response(id, attempt, data);
            let mut out = BytesMut::new();
            prop_assert!(encode_from_worker(&frame, &mut out));
            prop_assert_eq!(&out[..], &serde_bytes_of(&frame)[..]);
            prop_assert_eq!(decode_from_worker(&out), Some(frame));
        }

        #[test]
        fn a_cut_or_altered_frame_is_left_to_serde_never_misread(
            id: u128, attempt: u32, at: u64, payload in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bits in 1u8..=255,
        ) {
            let frame = request(id, attempt, at, payload);
            let bytes = serde_bytes_of(&frame);
            let cut = cut.index(bytes.len());
            prop_assert_eq!(decode_to_worker(&bytes[..cut]), None);
            let mut altered = bytes.clone();
            altered[flip.index(bytes.len())] ^= bits;
            // Whatever the fast path reads from altered bytes, serde reads too.
            if let Some(fast) = decode_to_worker(&altered) {
                prop_assert_eq!(Some(fast), rmp_serde::from_slice::<ToWorker>(&altered).ok());
            }
        }
    }

    #[test]
    fn other_frames_are_left_to_serde() {
        let mut out = BytesMut::new();
        let attached = ToWorker::Request(RequestFrame {
            attachment: Some(crate::protocol::AttachmentKind::Tcp),
            ..match request(1, 1, 1, vec![1]) {
                ToWorker::Request(r) => r,
                _ => unreachable!(),
            }
        });
        assert!(!encode_to_worker(&attached, &mut out));
        assert!(!encode_to_worker(&ToWorker::SoftKill, &mut out));
        let failed = FromWorker::Response {
            id: Uuid::nil(),
            attempt: 1,
            outcome: Outcome::Err(crate::protocol::RemoteError::new("handler", "no")),
            stream: false,
        };
        assert!(!encode_from_worker(&failed, &mut out));
        let streamed = FromWorker::Response {
            id: Uuid::nil(),
            attempt: 1,
            outcome: Outcome::Ok(ByteBuf::new()),
            stream: true,
        };
        assert!(!encode_from_worker(&streamed, &mut out));
        assert!(out.is_empty(), "nothing written for a frame left to serde");
        // Frames serde wrote in a layout of their own are not the fast path's.
        assert_eq!(decode_to_worker(&serde_bytes_of(&attached)), None);
        assert_eq!(decode_from_worker(&serde_bytes_of(&failed)), None);
        assert_eq!(decode_from_worker(&serde_bytes_of(&streamed)), None);
    }
}
