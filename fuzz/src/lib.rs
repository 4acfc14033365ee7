//! What the fuzz targets share: a stream of bytes through the frame
//! readers both sides use, and the properties every decode must keep.

use std::io;

use futures::executor::block_on;
use futures::{SinkExt, StreamExt};
use nanny_worker::protocol::{self as p, Frame, FrameReader, LINK_BUFFER};
use tokio_util::codec::LengthDelimitedCodecError;

/// The frame limit of the targets: small, so that an allocation of a
/// hostile length prefix would show in the read buffer.
pub const MAX: usize = 64 * 1024;

/// Reads `data` with `reader` to its end or its first error, checking on
/// the way: a typed error, a bounded buffer, and that every frame read
/// encodes and reads back as itself. Returns the frames.
pub fn read_all<T: Frame + Clone + PartialEq + std::fmt::Debug>(mut reader: FrameReader<&[u8], T>) -> Vec<T> {
    let mut frames = Vec::new();
    block_on(async {
        while let Some(item) = reader.next().await {
            let capacity = reader.get_ref().read_buffer().capacity();
            assert!(capacity <= MAX + LINK_BUFFER + 4, "read buffer of {capacity}");
            match item {
                Ok(frame) => frames.push(frame),
                Err(e) => {
                    check_error(&e);
                    break;
                }
            }
        }
    });
    for frame in &frames {
        round_trip(frame);
    }
    frames
}

/// Only the codec's and MessagePack's errors, and a cut last frame.
fn check_error(e: &io::Error) {
    match e.kind() {
        io::ErrorKind::InvalidData => {}
        io::ErrorKind::Other => assert_eq!(e.to_string(), "bytes remaining on stream"),
        _ => panic!("untyped error {e:?}"),
    }
    let oversize = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<LengthDelimitedCodecError>().is_some());
    if oversize {
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

/// `frame` through the real writer and reader again: the same frame (if
/// it still fits, once written in its shortest form).
fn round_trip<T: Frame + Clone + PartialEq + std::fmt::Debug>(frame: &T) {
    let mut bytes = Vec::new();
    let sent = block_on(async {
        let mut writer = p::frame_writer::<_, T>(&mut bytes, MAX);
        writer.send(frame.clone()).await
    });
    if sent.is_err() {
        return;
    }
    let mut reader = p::frame_reader::<_, T>(&bytes[..], MAX);
    let again = block_on(reader.next())
        .expect("one frame")
        .expect("it reads back");
    assert_eq!(&again, frame, "a frame read back differs");
}
