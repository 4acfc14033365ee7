//! The ahead bytes over a real socketpair: written straight to an idle
//! writer's socket, left to a busy one, in order before the queue, in the
//! bound, handed over when their sender goes.

use std::collections::VecDeque;

use bytes::BytesMut;
use nanny_worker::protocol::ToWorker;
use tokio::sync::mpsc::error::TrySendError;

use super::super::{with_direct, Receiver, Sender};
use super::{Direct, Spare};
use crate::worker::link::Outgoing;

fn frame() -> Outgoing {
    Outgoing::Frame(ToWorker::SoftKill)
}

/// A frame outbox that writes ahead to one end of a socketpair; the
/// other end, and the write half (kept: dropping it shuts the socket).
fn direct_outbox(
    capacity: usize,
) -> (
    Sender<Outgoing>,
    Receiver<Outgoing>,
    std::os::unix::net::UnixStream,
    nanny_worker::protocol::quiet::QuietWrite,
) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_read, write) = nanny_worker::protocol::quiet::split_std(ours).unwrap();
    let direct = Direct {
        socket: write.direct().unwrap(),
        max_frame_len: 1024,
    };
    let (tx, rx) = with_direct(capacity, Some(direct));
    (tx, rx, theirs, write)
}

/// Writes `bytes` ahead if given room, else queues a frame.
fn ahead_or_frame(tx: &Sender<Outgoing>, spare: &mut Spare, bytes: &[u8]) -> Result<bool, TrySendError<()>> {
    tx.try_write_ahead(spare, |room| match room {
        Some((out, _)) => {
            out.extend_from_slice(bytes);
            None
        }
        None => Some(frame()),
    })
}

/// Everything the socket holds now.
fn read_now(theirs: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    use std::io::Read;
    theirs.set_nonblocking(true).unwrap();
    let (mut got, mut chunk) = (Vec::new(), vec![0; 64 * 1024]);
    while let Ok(n @ 1..) = theirs.read(&mut chunk) {
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

#[tokio::test]
async fn ahead_bytes_go_straight_to_the_socket_of_an_idle_writer() {
    let (tx, rx, mut theirs, _write) = direct_outbox(4);
    let mut spare = Spare::default();
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"one"), Ok(true), "flush owed");
    assert!(
        read_now(&mut theirs).is_empty(),
        "nothing written before the flush"
    );
    tx.flush_ahead(&mut spare);
    assert_eq!(read_now(&mut theirs), b"one");
    assert_eq!(spare.0.len(), 1, "the buffer came back");
    let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
    assert_eq!(
        rx.try_take(&mut batch, &mut ahead),
        None,
        "nothing for the writer"
    );
    // More than one frame in a turn: a busy link, left to the writer.
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"two "), Ok(true), "owed again");
    assert!(spare.0.is_empty(), "lent again");
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"three"), Ok(false));
    tx.flush_ahead(&mut spare);
    assert!(read_now(&mut theirs).is_empty(), "not written here");
    assert!(rx.take(&mut batch, &mut ahead).await, "the writer was woken");
    assert_eq!(&ahead[..], b"two three");
}

#[tokio::test]
async fn ahead_bytes_precede_queued_frames_and_a_busy_writer_takes_them() {
    let (tx, rx, mut theirs, _write) = direct_outbox(8);
    let mut spare = Spare::default();
    let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
    // The writer is busy (it took a batch and has not said idle).
    tx.try_send(frame()).unwrap();
    assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
    batch.clear();
    // The queue is empty: ahead, but no flush while the writer is busy.
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"ahead"), Ok(true));
    tx.flush_ahead(&mut spare);
    assert!(read_now(&mut theirs).is_empty(), "not written past a busy writer");
    // A frame queued now goes behind the ahead bytes.
    tx.try_send(frame()).unwrap();
    assert_eq!(
        ahead_or_frame(&tx, &mut spare, b"x"),
        Ok(false),
        "queue not empty: queued"
    );
    assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
    assert_eq!(
        &ahead[..],
        b"ahead",
        "the ahead bytes, for the writer to write first"
    );
    assert_eq!(batch.len(), 2);
    // Idle again only once nothing waits.
    batch.clear();
    ahead.clear();
    rx.idle(&mut batch);
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"now"), Ok(true));
    tx.flush_ahead(&mut spare);
    assert_eq!(read_now(&mut theirs), b"now");
}

#[tokio::test]
async fn what_a_full_socket_does_not_take_goes_to_the_writer_and_ahead_frames_count_in_the_bound() {
    let (tx, rx, mut theirs, _write) = direct_outbox(3);
    let mut spare = Spare::default();
    let big = vec![7u8; 4 << 20];
    assert_eq!(ahead_or_frame(&tx, &mut spare, &big), Ok(true));
    tx.flush_ahead(&mut spare);
    let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
    // The writer was woken for the rest.
    assert!(rx.take(&mut batch, &mut ahead).await);
    let mut got = read_now(&mut theirs);
    assert!(
        !got.is_empty() && got.len() < big.len(),
        "the socket took part of it"
    );
    got.extend_from_slice(&ahead);
    assert_eq!(got, big, "all of it, once");
    assert!(batch.is_empty());

    // Room again once taken; the writer is busy, so it takes these too,
    // and ahead frames count in the bound.
    for _ in 0..3 {
        assert!(ahead_or_frame(&tx, &mut spare, b"end").is_ok());
    }
    assert_eq!(
        ahead_or_frame(&tx, &mut spare, b"over"),
        Err(TrySendError::Full(())),
        "three frames ahead fill an outbox of three"
    );
    tx.flush_ahead(&mut spare);
    assert!(read_now(&mut theirs).is_empty(), "not past the busy writer");
    ahead.clear();
    assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
    assert_eq!(&ahead[..], b"endendend");
}

#[tokio::test]
async fn ahead_bytes_left_by_a_dropped_sender_go_to_the_writer_and_a_gone_writer_refuses() {
    let (tx, rx, _theirs, _write) = direct_outbox(4);
    let keep = tx.clone();
    let mut spare = Spare::default();
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"left"), Ok(true));
    drop(tx); // not the last sender, and no flush
    let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
    assert!(rx.take(&mut batch, &mut ahead).await, "the writer was woken");
    assert_eq!(&ahead[..], b"left");
    drop(rx);
    assert_eq!(
        ahead_or_frame(&keep, &mut spare, b"late"),
        Err(TrySendError::Closed(()))
    );
}

#[tokio::test]
async fn a_turn_takes_at_most_its_limit_ahead_and_queues_the_rest_behind_it() {
    let (tx, rx, _theirs, _write) = direct_outbox(64);
    let mut spare = Spare::default();
    let chunk = vec![7u8; 4096];
    // Four chunks fill the limit; the fifth frame finds no room ahead.
    for _ in 0..4 {
        assert!(ahead_or_frame(&tx, &mut spare, &chunk).is_ok());
    }
    assert_eq!(
        ahead_or_frame(&tx, &mut spare, &chunk),
        Ok(false),
        "queued, not ahead"
    );
    // And so does every later one, behind it.
    assert_eq!(ahead_or_frame(&tx, &mut spare, b"small"), Ok(false));
    let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
    assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
    assert_eq!(ahead.len(), super::AHEAD_LIMIT, "the ahead bytes, first");
    assert_eq!(batch.len(), 2, "then the queued frames");
}
