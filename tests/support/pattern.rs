//! The byte pattern of the stream tests and its digest: what
//! [`Cmd::ChecksumStream`](super::Cmd::ChecksumStream) reads and answers,
//! shared by the test worker and the tests.
#![allow(dead_code)] // each side uses its half

use serde::{Deserialize, Serialize};

/// What [`Cmd::ChecksumStream`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checksum {
    /// Bytes read.
    pub(crate) bytes: u64,
    /// Their [`Hasher`] digest.
    pub(crate) hash: u64,
}

/// The period of [`pattern`]: a prime, so that it never lines up with
/// chunk or buffer sizes (a lost or repeated chunk changes the digest).
pub(crate) const PATTERN_PERIOD: usize = 65_521;

/// The test streams' content: byte `i` of a stream is `pattern()[i % PATTERN_PERIOD]`.
pub(crate) fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..PATTERN_PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// A byte stream of `len` bytes of [`pattern`]: fills each read with
/// `memcpy`s, so it is fast even in a debug build.
#[derive(Debug)]
pub(crate) struct PatternReader {
    pos: u64,
    len: u64,
}

impl PatternReader {
    pub(crate) fn new(len: u64) -> Self {
        Self { pos: 0, len }
    }

    /// Bytes produced so far.
    pub(crate) fn produced(&self) -> u64 {
        self.pos
    }
}

impl tokio::io::AsyncRead for PatternReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let pattern = pattern();
        let left = (self.len - self.pos).min(buf.remaining() as u64) as usize;
        let mut done = 0;
        while done < left {
            let at = (self.pos % PATTERN_PERIOD as u64) as usize;
            let n = (PATTERN_PERIOD - at).min(left - done);
            buf.put_slice(&pattern[at..at + n]);
            self.pos += n as u64;
            done += n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// A 64-bit digest (FNV-1a over little-endian 8-byte words, then the
/// tail bytes), written by hand: order-sensitive, and independent of how
/// the bytes are split into `update` calls.
#[derive(Debug, Clone)]
pub(crate) struct Hasher {
    state: u64,
    tail: [u8; 8],
    tail_len: usize,
    bytes: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            state: 0xcbf2_9ce4_8422_2325,
            tail: [0; 8],
            tail_len: 0,
            bytes: 0,
        }
    }
}

impl Hasher {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.tail_len > 0 {
            let n = (8 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&data[..n]);
            self.tail_len += n;
            data = &data[n..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let words = data.chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn word(&mut self, w: u64) {
        self.state = (self.state ^ w).wrapping_mul(Self::PRIME);
    }

    pub(crate) fn finish(&self) -> Checksum {
        let mut state = self.state;
        for &b in &self.tail[..self.tail_len] {
            state = (state ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        Checksum {
            bytes: self.bytes,
            hash: state,
        }
    }
}

/// The [`Checksum`] of `len` bytes of [`pattern`].
pub(crate) fn pattern_checksum(len: u64) -> Checksum {
    let pattern = pattern();
    let mut h = Hasher::default();
    let mut left = len;
    let mut at = 0usize;
    while left > 0 {
        let n = ((PATTERN_PERIOD - at) as u64).min(left) as usize;
        h.update(&pattern[at..at + n]);
        left -= n as u64;
        at = (at + n) % PATTERN_PERIOD;
    }
    h.finish()
}
