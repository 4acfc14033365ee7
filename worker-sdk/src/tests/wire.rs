//! Pins the claims PROTOCOL.md makes about the bytes on the wire.

use futures::SinkExt;
use tokio::io::AsyncReadExt;

use super::*;

const ID: Uuid = Uuid::from_bytes([0x11; 16]);

#[tokio::test]
async fn the_cancel_frame_in_protocol_md() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut w: FrameWriter<_, ToWorker> = frame_writer(a, DEFAULT_MAX_FRAME_LEN);
    w.send(ToWorker::Cancel { id: ID, attempt: 2 }).await.unwrap();
    let mut frame = [0u8; 43];
    b.read_exact(&mut frame).await.unwrap();
    let mut expected = vec![0, 0, 0, 0x27, 0x81, 0xa6];
    expected.extend(b"Cancel");
    expected.extend([0x82, 0xa2, b'i', b'd', 0xc4, 0x10]);
    expected.extend([0x11; 16]);
    expected.push(0xa7);
    expected.extend(b"attempt");
    expected.push(0x02);
    assert_eq!(frame.as_slice(), expected);
}

#[test]
fn outcomes_and_unit_variants() {
    let ok = rmp_serde::to_vec_named(&Outcome::Ok(serde_bytes::ByteBuf::from(vec![0xc0]))).unwrap();
    assert_eq!(ok, [0x81, 0xa2, b'O', b'k', 0xc4, 0x01, 0xc0], "{{\"Ok\": bin}}");
    let err = rmp_serde::to_vec_named(&Outcome::Err(RemoteError::new("k", "m"))).unwrap();
    let mut expected = vec![0x81, 0xa3, b'E', b'r', b'r', 0x82, 0xa4];
    expected.extend(b"kind");
    expected.extend([0xa1, b'k', 0xa7]);
    expected.extend(b"message");
    expected.extend([0xa1, b'm']);
    assert_eq!(err, expected);
    assert_eq!(
        rmp_serde::to_vec_named(&ToWorker::SoftKill).unwrap(),
        b"\xa8SoftKill"
    );
    assert_eq!(encode_payload(&()).unwrap(), [0xc0], "() is nil");
}

#[test]
fn decoders_are_lenient_where_protocol_md_says() {
    // Unknown keys are ignored; integers of any width are accepted.
    let mut hello = vec![0x81, 0xa5];
    hello.extend(b"Hello");
    hello.extend([0x85, 0xa7]);
    hello.extend(b"version");
    hello.extend([0xce, 0, 0, 0, 1, 0xa9]);
    hello.extend(b"worker_id");
    hello.extend([0x07, 0xa8]);
    hello.extend(b"pulse_ms");
    hello.extend([0x0a, 0xa5]);
    hello.extend(b"extra");
    hello.extend([0xc0, 0xad]);
    hello.extend(b"max_frame_len");
    hello.extend([0xcd, 0x10, 0x00]);
    let got: ToWorker = rmp_serde::from_slice(&hello).unwrap();
    let want = SupervisorHello {
        version: 1,
        min_version: None, // absent: a version-1 supervisor
        worker_id: 7,
        pulse_ms: 10,
        max_frame_len: 4096,
        unhealthy_timeout_ms: None,
    };
    assert_eq!(got, ToWorker::Hello(want));
    // A missing field is an error; a uuid as a string is an error.
    let mut ack = vec![0x81, 0xa3, b'A', b'c', b'k', 0x81, 0xa2, b'i', b'd', 0xc4, 0x10];
    ack.extend([0x11; 16]);
    assert!(rmp_serde::from_slice::<FromWorker>(&ack).is_err());
    let mut cancel = vec![0x81, 0xa6];
    cancel.extend(b"Cancel");
    cancel.extend([0x82, 0xa2, b'i', b'd', 0xd9, 36]);
    cancel.extend(ID.to_string().as_bytes());
    cancel.push(0xa7);
    cancel.extend(b"attempt");
    cancel.push(0x02);
    assert!(rmp_serde::from_slice::<ToWorker>(&cancel).is_err());
}

#[test]
fn the_fd_channel_tag_and_optional_fields_in_protocol_md() {
    // 11.1: id (16), attempt u32 big-endian, kind.
    let tag = FdTag {
        id: ID,
        attempt: 2,
        kind: FD_KIND_RESPONSE_STREAM,
    };
    let mut want = vec![0x11; 16];
    want.extend([0, 0, 0, 2, 2]);
    assert_eq!(tag.to_bytes().as_slice(), want);
    assert_eq!(FdTag::from_bytes(&want), Some(tag));
    assert_eq!(FdTag::from_bytes(&want[..20]), None);
    assert_eq!((FD_KIND_ATTACHMENT, FD_KIND_RESPONSE_STREAM), (1, 2));

    // `attachment` is a bare string, and absent when there is none.
    let frame = |attachment| {
        ToWorker::Request(RequestFrame {
            id: ID,
            attempt: 1,
            created_at_ms: 0,
            payload: vec![],
            attachment,
        })
    };
    let with = rmp_serde::to_vec_named(&frame(Some(AttachmentKind::Tcp))).unwrap();
    let mut field = vec![0xaa];
    field.extend(b"attachment");
    field.extend([0xa3, b'T', b'c', b'p']);
    assert!(with.windows(field.len()).any(|w| w == field));
    let without = rmp_serde::to_vec_named(&frame(None)).unwrap();
    assert!(!without.windows(10).any(|w| w == b"attachment"));
    assert_eq!(rmp_serde::from_slice::<ToWorker>(&without).unwrap(), frame(None));

    // `stream` is present only when true.
    let response = |stream| FromWorker::Response {
        id: ID,
        attempt: 1,
        outcome: Outcome::Ok(serde_bytes::ByteBuf::from(vec![0xc0])),
        stream,
    };
    let streamed = rmp_serde::to_vec_named(&response(true)).unwrap();
    assert!(streamed.ends_with(b"\xa6stream\xc3"));
    let plain = rmp_serde::to_vec_named(&response(false)).unwrap();
    assert!(!plain.windows(6).any(|w| w == b"stream"));
    assert_eq!(
        rmp_serde::from_slice::<FromWorker>(&plain).unwrap(),
        response(false)
    );
    let accepted = rmp_serde::to_vec_named(&FromWorker::Accepted { id: ID, attempt: 1 }).unwrap();
    assert_eq!(&accepted[..10], b"\x81\xa8Accepted");
}
