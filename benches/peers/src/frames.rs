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

/// A read buffer zeroed once: reads go into its spare tail, consumed
/// frames leave from its front, and what is left of a frame moves to the
/// front only when the tail runs short. (Growing a `Vec` by
/// [`READ_CHUNK`] zeros before every read would add a 256 KiB `memset`
/// to every round trip of the baselines.)
#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        Self {
            buf: vec![0; 2 * READ_CHUNK],
            start: 0,
            end: 0,
        }
    }
}

impl ReadBuf {
    /// The bytes read and not consumed.
    pub fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Room for at least [`READ_CHUNK`] bytes after what is filled (a
    /// frame longer than the buffer grows it).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.copy_within(self.start..self.end, 0);
            (self.end, self.start) = (self.end - self.start, 0);
            if self.buf.len() - self.end < READ_CHUNK {
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn fill(&mut self, n: usize) {
        self.end += n;
    }

    /// The first `n` filled bytes are done with.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }
}

/// Reads once into `buf`; returns the bytes read, 0 at end of stream.
pub fn read_into(sock: &mut impl Read, buf: &mut ReadBuf) -> io::Result<usize> {
    let n = sock.read(buf.spare())?;
    buf.fill(n);
    Ok(n)
}

/// The raw peer's worker: blocking std I/O, echoing every frame, with one
/// write per read when `batched` and one write per frame otherwise.
pub fn serve_blocking(mut sock: UnixStream, batched: bool) -> io::Result<()> {
    let (mut buf, mut frames) = (ReadBuf::default(), Vec::new());
    loop {
        if read_into(&mut sock, &mut buf)? == 0 {
            return Ok(());
        }
        let filled = buf.filled();
        frames.clear();
        let done = split(filled, |len| frames.push(len));
        if batched {
            sock.write_all(&filled[..done])?;
        } else {
            let mut at = 0;
            for &len in &frames {
                sock.write_all(&filled[at..at + HEADER + len])?;
                at += HEADER + len;
            }
        }
        buf.consume(done);
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
        let mut buf = ReadBuf::default();
        loop {
            let n = sock.read(buf.spare()).await?;
            if n == 0 {
                return Ok(());
            }
            buf.fill(n);
            let done = split(buf.filled(), |_| {});
            sock.write_all(&buf.filled()[..done]).await?;
            buf.consume(done);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` into `buf` as reads of at most `chunk` bytes would.
    fn read_in(buf: &mut ReadBuf, mut bytes: &[u8], chunk: usize) {
        while !bytes.is_empty() {
            let spare = buf.spare();
            let n = chunk.min(spare.len()).min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            buf.fill(n);
            bytes = &bytes[n..];
        }
    }

    #[test]
    fn a_read_buffer_keeps_a_partial_frame_across_compactions_and_grows_for_a_long_one() {
        let mut buf = ReadBuf::default();
        let (small, long) = (vec![1u8; 100], vec![2u8; 3 * READ_CHUNK]);
        let mut stream = Vec::new();
        for _ in 0..6000 {
            push_frame(&mut stream, &small);
        }
        push_frame(&mut stream, &long);
        push_frame(&mut stream, &small);
        let mut seen = Vec::new();
        for piece in stream.chunks(7919) {
            read_in(&mut buf, piece, 4096);
            let filled = buf.filled();
            let mut at = 0;
            let done = split(filled, |len| {
                let body = &filled[at + HEADER..at + HEADER + len];
                assert!(body.iter().all(|&b| b == body[0]), "a frame's bytes stay whole");
                seen.push((len, body[0]));
                at += HEADER + len;
            });
            buf.consume(done);
        }
        assert_eq!(seen.len(), 6002);
        assert_eq!(seen[6000], (3 * READ_CHUNK, 2));
        assert_eq!(seen[6001], (100, 1));
        assert!(buf.filled().is_empty());
    }
}
