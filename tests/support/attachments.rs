//! Helpers for the attachment tests: a probing stream source, and talking
//! to (or waiting for the end of) our side of an attached socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

use super::cmd::PatternReader;
use super::within;

/// A [`PatternReader`] that counts what it produced and tells when it is
/// dropped (the supervisor's pump has let go of it); optionally fails after
/// `fail_after` bytes.
pub(crate) struct Probe {
    inner: PatternReader,
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
    fail_after: Option<u64>,
}

#[derive(Clone)]
pub(crate) struct ProbeView {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl ProbeView {
    pub(crate) fn produced(&self) -> u64 {
        self.produced.load(Ordering::SeqCst)
    }

    pub(crate) fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

pub(crate) fn probe(len: u64, fail_after: Option<u64>) -> (Probe, ProbeView) {
    let view = ProbeView {
        produced: Arc::new(AtomicU64::new(0)),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let probe = Probe {
        inner: PatternReader::new(len),
        produced: Arc::clone(&view.produced),
        dropped: Arc::clone(&view.dropped),
        fail_after,
    };
    (probe, view)
}

impl AsyncRead for Probe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fail_after.is_some_and(|n| self.inner.produced() >= n) {
            return Poll::Ready(Err(io::Error::other("the source failed on purpose")));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.produced.fetch_add(n, Ordering::SeqCst);
        poll
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// Sends `text` on `io`, shuts down writing, and reads to the end: the end
/// comes only once every copy of the other side is closed or shut down.
pub(crate) async fn talk(io: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin), text: &str) -> String {
    io.write_all(text.as_bytes()).await.expect("write");
    io.shutdown().await.expect("shutdown");
    let mut back = String::new();
    within("the echo and its end", io.read_to_string(&mut back))
        .await
        .expect("read the echo");
    back
}

/// Waits for the end of file on `io`, reading nothing else: every copy of
/// the other end is closed.
pub(crate) async fn closed(io: &mut UnixStream) {
    let mut rest = Vec::new();
    within("the end of file", io.read_to_end(&mut rest))
        .await
        .expect("read to the end");
    assert!(rest.is_empty(), "nothing was sent: {rest:?}");
}
