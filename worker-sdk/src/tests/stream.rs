//! The chunked stream format: [`pump`] and [`ChunkReader`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::UnixStream;

use crate::stream::{pump, pump_socket, ChunkReader, CHUNK_SIZE, MAX_CHUNK_LEN};

/// Deterministic pseudo-random bytes (xorshift64*).
pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut rng = Rng(seed | 1);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// An order-sensitive checksum, fed in pieces of any size.
#[derive(Default, PartialEq, Eq, Debug, Clone, Copy)]
pub(super) struct Sum {
    pub(super) len: u64,
    pub(super) acc: u64,
}

impl Sum {
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.acc = (self.acc ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }

    pub(super) fn of(bytes: &[u8]) -> Self {
        let mut s = Self::default();
        s.feed(bytes);
        s
    }
}

/// Encodes `data` as chunks of the given sizes (cycled), with or without the end chunk.
fn encode(data: &[u8], sizes: &[usize], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
        rest = tail;
    }
    if end {
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// Hands out at most one byte per read, to split every header and body.
struct Trickle<'a>(&'a [u8]);

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some((&first, rest)) = self.0.split_first() {
            buf.put_slice(&[first]);
            self.0 = rest;
        }
        Poll::Ready(Ok(()))
    }
}

async fn decode_all(reader: impl AsyncRead + Unpin) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    ChunkReader::new(reader).read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn round_trip_of_many_sizes_through_a_socketpair() {
    for (i, len) in [0, 1, 5, 4095, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 300_001]
        .into_iter()
        .enumerate()
    {
        let data = noise(i as u64 + 1, len);
        let (a, b) = UnixStream::pair().unwrap();
        let source = data.clone();
        let writer = tokio::spawn(async move { pump(&source[..], a).await });
        let mut reader = ChunkReader::new(b);
        // Small, odd reads: chunk boundaries fall inside them.
        let mut got = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(reader.is_finished(), "{len}: ended with the end chunk");
        assert_eq!(got.len(), data.len(), "{len}");
        assert!(got == data, "{len}: same bytes");
        assert_eq!(writer.await.unwrap().unwrap(), len as u64);
    }
}

#[tokio::test]
async fn any_chunking_decodes_even_a_byte_at_a_time() {
    let data = noise(9, 10_000);
    for sizes in [&[1usize][..], &[3, 700, 1], &[10_000], &[MAX_CHUNK_LEN]] {
        let encoded = encode(&data, sizes, true);
        assert_eq!(decode_all(Trickle(&encoded)).await.unwrap(), data, "{sizes:?}");
        assert_eq!(decode_all(&encoded[..]).await.unwrap(), data, "{sizes:?}");
    }
    // Nothing is read past the end chunk.
    let mut encoded = encode(b"abc", &[2], true);
    encoded.extend_from_slice(b"trailing");
    let mut reader = ChunkReader::new(&encoded[..]);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"abc");
    assert_eq!(reader.into_inner(), b"trailing");
}

#[tokio::test]
async fn a_stream_cut_short_is_unexpected_eof() {
    let data = noise(3, 1000);
    let whole = encode(&data, &[300], true);
    let no_end = &whole[..whole.len() - 4];
    for (what, input) in [
        ("empty", &[][..]),
        ("no end chunk", no_end),
        ("inside a header", &whole[..2]),
        ("inside a later header", &no_end[..304 + 2]),
        ("inside a body", &whole[..100]),
    ] {
        let err = decode_all(input).await.expect_err(what);
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{what}");
        assert!(err.to_string().contains("stream truncated"), "{what}: {err}");
        let err = decode_all(Trickle(input)).await.expect_err(what);
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{what}, trickled");
    }
}

#[tokio::test]
async fn an_oversize_chunk_is_invalid_data() {
    let mut input = ((MAX_CHUNK_LEN + 1) as u32).to_be_bytes().to_vec();
    input.extend(vec![0u8; 64]);
    let err = decode_all(&input[..]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let err = decode_all(&u32::MAX.to_be_bytes()[..]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}

/// Yields `len` pseudo-random bytes, summing them as it goes, then fails
/// if `fail` is set (instead of ending).
struct Source {
    rng: Rng,
    left: usize,
    sum: Sum,
    fail: bool,
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(if self.fail {
                Err(io::Error::other("the source failed"))
            } else {
                Ok(())
            });
        }
        let n = (buf.remaining().min(self.left)) & !7;
        let n = if n == 0 { buf.remaining().min(self.left) } else { n };
        let mut chunk = vec![0u8; n];
        for word in chunk.chunks_mut(8) {
            let bytes = self.rng.next().to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        self.sum.feed(&chunk);
        self.left -= n;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_through_a_socketpair_with_a_checksum() {
    const LEN: usize = 64 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    let writer = tokio::spawn(async move {
        let mut source = Source {
            rng: Rng(0x5eed),
            left: LEN,
            sum: Sum::default(),
            fail: false,
        };
        let n = pump(&mut source, a).await.unwrap();
        (n, source.sum)
    });
    let mut reader = ChunkReader::new(b);
    let mut buf = vec![0u8; 100_000];
    let mut sum = Sum::default();
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        sum.feed(&buf[..n]);
    }
    let (sent, sent_sum) = writer.await.unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(sum.len, LEN as u64);
    assert_eq!(sum, sent_sum);
}

#[tokio::test]
async fn a_failing_source_leaves_a_truncated_stream() {
    let (a, b) = UnixStream::pair().unwrap();
    let source = Source {
        rng: Rng(1),
        left: 200_000,
        sum: Sum::default(),
        fail: true,
    };
    let writer = tokio::spawn(async move { pump(source, a).await });
    let err = decode_all(b).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    assert!(writer.await.unwrap().is_err(), "pump reports the source's error");
}

/// A source that never produces a byte.
struct Idle;

impl AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn pump_socket_stops_when_the_reader_closes_even_with_an_idle_source() {
    let (a, b) = UnixStream::pair().unwrap();
    let writer = tokio::spawn(pump_socket(Idle, a));
    drop(b);
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), writer)
        .await
        .expect("the pump ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
}

#[tokio::test]
async fn pump_socket_copies_like_pump() {
    let data = noise(7, 3 * CHUNK_SIZE + 5);
    let (a, b) = UnixStream::pair().unwrap();
    let writer = tokio::spawn(pump_socket(std::io::Cursor::new(data.clone()), a));
    assert_eq!(decode_all(b).await.unwrap(), data);
    assert_eq!(writer.await.unwrap().unwrap(), data.len() as u64);
}
