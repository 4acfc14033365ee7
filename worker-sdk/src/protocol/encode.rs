//! Frames encoded by hand into a buffer, for a sender that writes the
//! socket itself: the same bytes as a [`FrameWriter`](super::FrameWriter)'s.

use bytes::BytesMut;

use super::codec::Frame;

/// Appends `frame` to `out` as a [`FrameWriter`](super::FrameWriter) puts it on the wire: its
/// body's length (4 bytes, big endian), then the body. For a sender that
/// writes the socket itself (the supervisor writing straight to an idle
/// worker's socket). Nothing is appended on error: `InvalidInput` for a
/// body longer than `max_frame_len` (the length-delimited codec's own
/// refusal), `InvalidData` if serde refuses the frame.
pub fn encode_frame<T: Frame>(frame: &T, max_frame_len: usize, out: &mut BytesMut) -> std::io::Result<()> {
    framed(max_frame_len, out, |body| {
        if frame.encode_hot(body) {
            return Ok(());
        }
        use bytes::BufMut;
        rmp_serde::encode::write_named(&mut body.writer(), frame)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })
}

/// [`encode_frame`] for a `Request` without an attachment, from its parts:
/// the payload is borrowed, not moved into a [`RequestFrame`](super::RequestFrame).
/// The same bytes as `encode_frame` of that frame.
pub fn encode_request_frame(
    head: &super::RequestHead,
    payload: &[u8],
    max_frame_len: usize,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    framed(max_frame_len, out, |body| {
        super::hot::encode_request(head, payload, body);
        Ok(())
    })
}

/// Feeds `frame` to `writer` as [`SinkExt::feed`](futures::SinkExt::feed)
/// does (the same bytes, written out first if the buffer is at its
/// backpressure boundary), but encoded straight into the writer's buffer:
/// no buffer of its own for the body, and no copy of it (about 500
/// instructions and an allocation per frame, most of what a worker spent
/// writing an answer). The error for a frame over the bound is the
/// codec's kind, `InvalidInput`.
pub async fn feed_frame<W, T>(writer: &mut super::FrameWriter<W, T>, frame: &T) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
    T: Frame + Unpin,
{
    use futures::SinkExt;
    let framed = writer.get_ref();
    if framed.write_buffer().len() >= framed.backpressure_boundary() {
        writer.flush().await?;
    }
    start_frame(writer, frame)
}

/// [`feed_frame`] once the writer is ready, as `Sink::start_send` after
/// `poll_ready`: encodes `frame` into the writer's buffer.
pub fn start_frame<W, T: Frame>(writer: &mut super::FrameWriter<W, T>, frame: &T) -> std::io::Result<()> {
    let framed = writer.get_mut();
    let max_frame_len = framed.encoder().max_frame_length();
    encode_frame(frame, max_frame_len, framed.write_buffer_mut())
}

/// Appends a length prefix and what `body` writes after it, then fills the
/// prefix in; truncates back on error or a body over `max_frame_len`.
fn framed(
    max_frame_len: usize,
    out: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let written = body(out).and_then(|()| {
        let len = out.len() - start - 4;
        match u32::try_from(len) {
            Ok(n) if len <= max_frame_len => Ok(n),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a frame of {len} bytes is over the bound of {max_frame_len}"),
            )),
        }
    });
    match written {
        Ok(n) => {
            out[start..start + 4].copy_from_slice(&n.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::SinkExt;
    use uuid::Uuid;

    use super::*;
    use crate::protocol::{encode_payload, frame_writer, FrameWriter, RequestFrame, RequestHead, ToWorker};

    /// What a `FrameWriter` puts on the wire for `frames`, in order.
    async fn written(frames: &[ToWorker], max_frame_len: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut w: FrameWriter<_, ToWorker> = frame_writer(a, max_frame_len);
        for f in frames {
            w.send(f.clone()).await.unwrap();
        }
        drop(w);
        let mut bytes = Vec::new();
        b.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn feed_frame_writes_what_feed_writes_past_the_backpressure_boundary_and_refuses_what_it_refuses() {
        use tokio::io::AsyncReadExt;
        let frames: Vec<ToWorker> = (0..40u8)
            .map(|i| ToWorker::Broadcast {
                event: format!("e{i}"),
                payload: vec![i; 500],
            })
            .collect();
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        // An idle writer: its boundary is LINK_BUFFER, which the 40 frames
        // of about 520 bytes pass twice.
        let mut w: FrameWriter<_, ToWorker> = crate::protocol::idle_frame_writer(a, 1024);
        for f in &frames {
            feed_frame(&mut w, f).await.unwrap();
            assert!(w.get_ref().write_buffer().len() <= crate::protocol::LINK_BUFFER + 600);
        }
        let big = ToWorker::Broadcast {
            event: "big".into(),
            payload: vec![0; 2000],
        };
        let err = feed_frame(&mut w, &big).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        w.close().await.unwrap();
        drop(w);
        let mut bytes = Vec::new();
        b.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(
            bytes,
            written(&frames, 1024).await,
            "the same bytes, in order, and nothing of the refused one"
        );
    }

    #[tokio::test]
    async fn encode_frame_writes_what_the_frame_writer_writes_and_refuses_what_it_refuses() {
        let head = RequestHead {
            id: Uuid::new_v4(),
            attempt: 3,
            created_at_ms: 1_700_000_000_000,
        };
        let payload = encode_payload(&("hi", 3u8)).unwrap();
        let request = ToWorker::Request(RequestFrame {
            id: head.id,
            attempt: head.attempt,
            created_at_ms: head.created_at_ms,
            payload: payload.clone(),
            attachment: None,
        });
        let with_attachment = ToWorker::Request(RequestFrame {
            attachment: Some(crate::protocol::AttachmentKind::Unix),
            ..RequestFrame {
                id: head.id,
                attempt: 1,
                created_at_ms: 0,
                payload: vec![1; 300],
                attachment: None,
            }
        });
        let frames = [request, ToWorker::SoftKill, with_attachment];
        let mut out = BytesMut::from(&b"before"[..]);
        encode_request_frame(&head, &payload, 1024, &mut out).unwrap();
        encode_frame(&ToWorker::SoftKill, 1024, &mut out).unwrap();
        encode_frame(&frames[2], 1024, &mut out).unwrap();
        assert_eq!(&out[..6], b"before", "appended");
        assert_eq!(&out[6..], written(&frames, 1024).await, "the same bytes");

        // Over the bound: an error, and nothing appended.
        let len = out.len();
        let err = encode_frame(&frames[2], 64, &mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let err = encode_request_frame(&head, &[0; 100], 64, &mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(out.len(), len);
        // Exactly at the bound is a frame.
        let body = written(&frames[..1], 1024).await.len() - 4;
        encode_request_frame(&head, &payload, body, &mut out).unwrap();
        assert_eq!(out.len(), len + body + 4);
    }
}
