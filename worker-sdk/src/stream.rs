//! The chunked byte-stream format of stream attachments and response
//! streams.
//!
//! A stream is a sequence of chunks, each a `u32` big-endian length followed
//! by that many bytes; a zero-length chunk is the clean end. End of file
//! before the end chunk means the writer died mid-stream: [`ChunkReader`]
//! reports it as an [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error
//! ("stream truncated"), never as a short read that looks complete.
//!
//! Writers send chunks of at most [`CHUNK_SIZE`] bytes; readers refuse a
//! chunk longer than [`MAX_CHUNK_LEN`] ([`InvalidData`](io::ErrorKind::InvalidData)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use tokio::io::AsyncReadExt;
//! use nanny_worker::stream::{pump, ChunkReader};
//!
//! let (a, b) = tokio::net::UnixStream::pair()?;
//! let writer = tokio::spawn(pump(&b"hello, stream"[..], a));
//! let mut text = String::new();
//! ChunkReader::new(b).read_to_string(&mut text).await?;
//! assert_eq!(text, "hello, stream");
//! assert_eq!(writer.await??, 13);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

/// The largest chunk [`pump`] writes (64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The largest chunk length a [`ChunkReader`] accepts (1 MiB).
pub const MAX_CHUNK_LEN: usize = 1024 * 1024;

const HEADER: usize = 4;

/// The error of a stream that ended before its end chunk.
fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "stream truncated: the other side exited before finishing",
    )
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a chunk header; `filled` of its bytes are in `header`.
    Header { filled: usize },
    /// Inside a chunk with this many bytes left.
    Body { left: usize },
    /// The end chunk was read.
    Done,
}

/// Decodes a chunked stream from `R`: reads give the chunks' bytes, and end
/// of file comes only after the end chunk.
///
/// A stream cut short (the writer died) fails with
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof); a chunk longer than
/// [`MAX_CHUNK_LEN`] with [`InvalidData`](io::ErrorKind::InvalidData).
/// Nothing is read from `R` after the end chunk.
pub struct ChunkReader<R> {
    inner: R,
    header: [u8; HEADER],
    state: State,
}

impl<R> fmt::Debug for ChunkReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkReader")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R> ChunkReader<R> {
    /// Decodes the chunked stream read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            header: [0; HEADER],
            state: State::Header { filled: 0 },
        }
    }

    /// Whether the end chunk has been read: the stream is complete.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying reader. Reading from it directly breaks the decoding.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying reader, positioned wherever decoding stopped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ChunkReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.state {
                State::Done => return Poll::Ready(Ok(())),
                State::Header { filled } => {
                    let mut rest = ReadBuf::new(&mut this.header[filled..]);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rest))?;
                    let got = rest.filled().len();
                    if got == 0 {
                        return Poll::Ready(Err(truncated()));
                    }
                    let filled = filled + got;
                    if filled < HEADER {
                        this.state = State::Header { filled };
                        continue;
                    }
                    let len = u32::from_be_bytes(this.header) as usize;
                    this.state = match len {
                        0 => State::Done,
                        len if len > MAX_CHUNK_LEN => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("stream chunk of {len} bytes; at most {MAX_CHUNK_LEN} are allowed"),
                            )));
                        }
                        len => State::Body { left: len },
                    };
                }
                State::Body { left } => {
                    let want = left.min(buf.remaining());
                    let mut part = ReadBuf::new(buf.initialize_unfilled_to(want));
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                    let got = part.filled().len();
                    if got == 0 {
                        return Poll::Ready(Err(truncated()));
                    }
                    buf.advance(got);
                    this.state = match left - got {
                        0 => State::Header { filled: 0 },
                        left => State::Body { left },
                    };
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// Copies `reader` into `writer` in the chunked format: chunks of up to
/// [`CHUNK_SIZE`] bytes, then the end chunk; then flushes and shuts
/// `writer` down. Returns how many bytes of `reader` were copied.
///
/// An error from either side stops the copy without the end chunk, so the
/// reading side sees a truncated stream, as if this process had died.
pub async fn pump<R, W>(mut reader: R, mut writer: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; HEADER + CHUNK_SIZE];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf[HEADER..]).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // `n` ≤ CHUNK_SIZE, so it fits a u32; 0 writes the end chunk.
        buf[..HEADER].copy_from_slice(&(n as u32).to_be_bytes());
        writer.write_all(&buf[..HEADER + n]).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    writer.flush().await?;
    writer.shutdown().await?;
    Ok(total)
}

/// [`pump`] into one end of a stream socketpair whose other end only reads
/// (a stream attachment, a response stream), watching that other end too:
/// when it is closed the copy stops at once with an error, even while
/// `reader` has nothing to give. Without the watch an idle `reader` (an
/// idle connection, say) would keep the copy, and both, alive until it
/// produced another byte.
///
/// Bytes the other end sends, which it should not, are read and ignored.
pub async fn pump_socket<R>(reader: R, socket: UnixStream) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
{
    let (mut peer, writer) = socket.into_split();
    let closed = async move {
        let mut ignored = [0u8; 256];
        loop {
            match peer.read(&mut ignored).await {
                Ok(0) => {
                    return io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the reading side closed the stream before its end",
                    )
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    };
    tokio::select! {
        // A copy that is done wins over the reader's close that may follow.
        biased;
        result = pump(reader, writer) => result,
        e = closed => Err(e),
    }
}
