//! Length-prefixed frames (a 4-byte little-endian length, then the
//! payload) and the echo servers of the raw and bare-tokio peers.
//!
//! An echo of a run of complete frames is those same bytes, so a server
//! answers by writing back the part of its read buffer that holds complete
//! frames: one write per read (batched), or one write per frame.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes of the length prefix.
pub const HEADER: usize = 4;
/// How much a reader asks the kernel for at once.
pub const READ_CHUNK: usize = 256 * 1024;

/// Appends one frame of `payload` to `buf`.
pub fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// One frame of `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    push_frame(&mut buf, payload);
    buf
}

/// The payload length of the frame at the start of `buf`, if all of it is there.
pub fn complete(buf: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(buf.get(..HEADER)?.try_into().ok()?) as usize;
    (buf.len() >= HEADER + len).then_some(len)
}

/// Splits `buf` into the lengths of its complete frames' payloads and the
/// number of bytes they take.
pub fn split(buf: &[u8], mut each: impl FnMut(usize)) -> usize {
    let mut at = 0;
    while let Some(len) = complete(&buf[at..]) {
        each(len);
        at += HEADER + len;
    }
    at
}

/// Reads once into the tail of `buf` (growing it by [`READ_CHUNK`]);
/// returns the bytes read, 0 at end of stream.
pub fn read_into(sock: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    let filled = buf.len();
    buf.resize(filled + READ_CHUNK, 0);
    let n = sock.read(&mut buf[filled..]);
    buf.truncate(filled + *n.as_ref().unwrap_or(&0));
    n
}

/// The raw peer's worker: blocking std I/O, echoing every frame, with one
/// write per read when `batched` and one write per frame otherwise.
pub fn serve_blocking(mut sock: UnixStream, batched: bool) -> io::Result<()> {
    let mut buf = Vec::with_capacity(2 * READ_CHUNK);
    loop {
        if read_into(&mut sock, &mut buf)? == 0 {
            return Ok(());
        }
        let mut frames = Vec::new();
        let done = split(&buf, |len| frames.push(len));
        if batched {
            sock.write_all(&buf[..done])?;
        } else {
            let mut at = 0;
            for len in frames {
                sock.write_all(&buf[at..at + HEADER + len])?;
                at += HEADER + len;
            }
        }
        buf.drain(..done);
    }
}

/// The bare-tokio peer's worker, on a current-thread runtime: echoes every
/// complete frame of a read in one write.
pub fn serve_tokio(sock: UnixStream) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        sock.set_nonblocking(true)?;
        let mut sock = tokio::net::UnixStream::from_std(sock)?;
        let mut buf = Vec::with_capacity(2 * READ_CHUNK);
        loop {
            let filled = buf.len();
            buf.resize(filled + READ_CHUNK, 0);
            let n = sock.read(&mut buf[filled..]).await?;
            buf.truncate(filled + n);
            if n == 0 {
                return Ok(());
            }
            let done = split(&buf, |_| {});
            sock.write_all(&buf[..done]).await?;
            buf.drain(..done);
        }
    })
}
