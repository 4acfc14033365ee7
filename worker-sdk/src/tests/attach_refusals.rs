//! Attachments against the fake supervisor that are never the handler's:
//! cancels (before a request arrives, while it waits for its descriptor,
//! while it runs), bad inline requests, unusable descriptors, and a worker
//! without an fd channel.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::serve::spawn_serve;
use super::*;
use crate::kind;

#[tokio::test]
async fn a_cancelled_attempt_closes_its_late_descriptor() {
    let (worker, mut fake) = start().await;
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let _serving = spawn_serve(&worker, move |req| {
        r.store(true, Ordering::SeqCst);
        async move {
            req.respond(&())?;
            Ok(())
        }
    });
    let id = fake.request_with(&(), Some(AttachmentKind::Fd)).await;
    fake.send(ToWorker::Cancel { id, attempt: 1 }).await;
    tokio::time::timeout(TIMEOUT, async {
        while waiting(&worker).await != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the matcher empties");
    let (mut r, w) = pipe();
    fake.send_fd(id, w.as_fd()).await;
    drop(w);
    wait_until(|| is_eof(&mut r)).await;
    // A descriptor of a kind the worker does not take is closed too.
    let (mut r, w) = pipe();
    let tag = FdTag {
        id: Uuid::new_v4(),
        attempt: 1,
        kind: FD_KIND_RESPONSE_STREAM,
    };
    fake.fds.as_ref().unwrap().send(tag, w.as_fd()).await.unwrap();
    drop(w);
    wait_until(|| is_eof(&mut r)).await;
    fake.assert_quiet().await; // no Accepted, no answer
    assert!(!ran.load(Ordering::SeqCst), "the handler never ran");
    // The link still serves.
    let id = fake.request(&()).await;
    assert!(matches!(fake.response(id).await, Outcome::Ok(_)));
}

/// Serves every request with `()`; the flag turns true if a request whose
/// payload is not the string `"plain"` reaches the handler.
fn serve_plain(worker: &Worker) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Result<(), crate::Error>>) {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let serving = spawn_serve(worker, move |req| {
        let r = r.clone();
        async move {
            if req.data::<String>()? != "plain" {
                r.store(true, Ordering::SeqCst);
            }
            req.respond(&())?;
            Ok(())
        }
    });
    (ran, serving)
}

#[tokio::test]
async fn an_inline_request_after_its_cancel_is_dropped() {
    let (worker, mut fake) = start().await;
    let (ran, _serving) = serve_plain(&worker);
    let frame = attached_frame("inline", AttachmentKind::Fd);
    let id = frame.id;
    fake.send(ToWorker::Cancel { id, attempt: 1 }).await;
    // The framed socket is read in order: once a later request is answered,
    // the cancel has been seen.
    let barrier = fake.request("plain").await;
    assert!(matches!(fake.response(barrier).await, Outcome::Ok(_)));
    let (mut r, w) = pipe();
    fake.send_inline(frame, w.as_fd()).await;
    drop(w);
    wait_until(|| is_eof(&mut r)).await;
    fake.assert_quiet().await; // no Accepted, no answer
    assert!(!ran.load(Ordering::SeqCst), "the handler never ran");
    assert!(worker.requests().await.is_empty());
    // The link still serves.
    let id = fake.request("plain").await;
    assert!(matches!(fake.response(id).await, Outcome::Ok(_)));
}

#[tokio::test]
async fn socket_is_none_once_the_attempt_is_cancelled() {
    let (worker, mut fake) = start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _serving = spawn_serve(&worker, move |mut req| {
        let tx = tx.clone();
        async move {
            req.cancelled().await;
            let _ = tx.send((req.socket().is_some(), req.stream().is_some()));
            Ok(())
        }
    });
    for kind in [AttachmentKind::Unix, AttachmentKind::Stream] {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let frame = attached_frame(&(), kind);
        let id = frame.id;
        fake.send_inline(frame, theirs.as_fd()).await;
        drop(theirs);
        wait_for_requests(&worker, 1).await;
        fake.send(ToWorker::Cancel { id, attempt: 1 }).await;
        let got = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .expect("the handler reports")
            .unwrap();
        assert_eq!(got, (false, false), "{kind:?}: nothing to take once cancelled");
        // No Accepted: the attachment was never the worker's. And no answer.
        fake.assert_quiet().await;
        // Closed with the request.
        ours.set_nonblocking(true).unwrap();
        let mut ours = std::fs::File::from(OwnedFd::from(ours));
        wait_until(|| is_eof(&mut ours)).await;
        wait_for_requests(&worker, 0).await;
    }
}

#[tokio::test]
async fn a_bad_inline_request_is_an_attachment_error_for_its_tag() {
    let (worker, mut fake) = start().await;
    let (ran, _serving) = serve_plain(&worker);
    let frame = |id: Uuid, attempt: u32, attachment: Option<AttachmentKind>| {
        encode_payload(&RequestFrame {
            id,
            attempt,
            created_at_ms: 1,
            payload: encode_payload("bad").unwrap(),
            attachment,
        })
        .unwrap()
    };
    let cases = [
        "garbage",
        "a truncated frame",
        "another id",
        "another attempt",
        "no attachment declared",
    ];
    for what in cases {
        let id = Uuid::new_v4();
        let bytes = match what {
            "garbage" => b"\xc1 not MessagePack".to_vec(),
            "a truncated frame" => {
                let mut bytes = frame(id, 1, Some(AttachmentKind::Fd));
                bytes.truncate(bytes.len() / 2);
                bytes
            }
            "another id" => frame(Uuid::new_v4(), 1, Some(AttachmentKind::Fd)),
            "another attempt" => frame(id, 2, Some(AttachmentKind::Fd)),
            "no attachment declared" => frame(id, 1, None),
            _ => unreachable!(),
        };
        let tag = FdTag {
            id,
            attempt: 1,
            kind: FD_KIND_ATTACHMENT,
        };
        let (mut r, w) = pipe();
        fake.fds
            .as_ref()
            .unwrap()
            .send_with(tag, w.as_fd(), &bytes)
            .await
            .unwrap();
        drop(w);
        match fake.next().await {
            FromWorker::Response {
                id: got,
                attempt,
                outcome: Outcome::Err(e),
                stream: false,
            } => {
                assert_eq!((got, attempt), (id, 1), "{what}: answers the tag's attempt");
                assert_eq!(e.kind, kind::ATTACHMENT, "{what}: {e}");
            }
            other => panic!("{what}: expected an attachment error, got {other:?}"),
        }
        wait_until(|| is_eof(&mut r)).await;
        // Still serving.
        let id = fake.request("plain").await;
        assert!(matches!(fake.response(id).await, Outcome::Ok(_)), "{what}");
    }
    fake.assert_quiet().await;
    assert!(!ran.load(Ordering::SeqCst), "no handler ran for a bad request");
}

#[tokio::test]
async fn an_unusable_attachment_is_accepted_and_answered_with_an_error() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        req.respond(&())?;
        Ok(())
    });
    // A regular file cannot be a tokio socket (epoll refuses it).
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let id = fake.request_with(&(), Some(AttachmentKind::Unix)).await;
    fake.send_fd(id, file.as_fd()).await;
    match fake.response_after_accepted(id).await {
        Outcome::Err(e) => assert_eq!(e.kind, kind::ATTACHMENT, "{e}"),
        Outcome::Ok(_) => panic!("expected an attachment error"),
    }
}

#[tokio::test]
async fn without_an_fd_channel_attachments_and_streams_are_errors() {
    let (worker, mut fake) = start_with(Opts {
        fd_channel: false,
        ..Opts::default()
    })
    .await;
    let _serving = spawn_serve(&worker, |req| async move {
        match req.respond_stream(&(), tokio::io::empty()) {
            Err(Error::NoFdChannel) => Ok(()),
            other => Err(format!("expected NoFdChannel, got {other:?}").into()),
        }
    });
    let id = fake.request_with(&(), Some(AttachmentKind::Tcp)).await;
    assert_eq!(fake.error_kind(id).await, kind::ATTACHMENT);
    let id = fake.request(&()).await;
    assert_eq!(fake.error_kind(id).await, kind::ATTACHMENT);
    fake.assert_quiet().await;
}
