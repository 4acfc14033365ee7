//! Hostile bytes against the decoders both sides really use (issue 14,
//! "Bad input"): the supervisor's reader of [`FromWorker`] frames
//! ([`idle_frame_reader`], as `src/worker/reader.rs` builds it), the SDK's
//! reader of [`ToWorker`] frames ([`frame_reader`]), and the SDK's hello
//! exchange ([`connect_stream`](crate::link::connect_stream)) against a
//! supervisor that sends anything as its hello.
//!
//! Every case asserts: no panic; each frame is a value or a typed error
//! (`InvalidData` from the codec or from MessagePack); the read buffer
//! never grows past the frame limit, and a length prefix above the limit
//! is refused as such (`LengthDelimitedCodecError`) before its body is
//! read. The case counts are small: the whole file runs in about a second
//! in a debug build.

use std::io;

use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::LengthDelimitedCodecError;

use super::*;
use crate::link::MIN_FRAME_LEN;

/// The frame limit of these tests: small, so that an allocation of a
/// hostile length prefix would show in the buffer's capacity.
const MAX: usize = 64 * 1024;

/// How a stream of frames ended.
#[derive(Debug)]
struct Decoded<T> {
    frames: Vec<T>,
    /// The error that ended it, if it did not end cleanly.
    error: Option<io::Error>,
    /// The largest capacity the read buffer had after a frame.
    peak_capacity: usize,
}

/// Reads `bytes` with `reader` until the end or the first error, as the
/// supervisor's and the SDK's tasks do.
fn decode_with<T: Frame>(mut reader: FrameReader<&[u8], T>) -> Decoded<T> {
    let mut decoded = Decoded {
        frames: Vec::new(),
        error: None,
        peak_capacity: 0,
    };
    futures::executor::block_on(async {
        while let Some(item) = reader.next().await {
            let capacity = reader.get_ref().read_buffer().capacity();
            decoded.peak_capacity = decoded.peak_capacity.max(capacity);
            match item {
                Ok(frame) => decoded.frames.push(frame),
                Err(e) => {
                    decoded.error = Some(e);
                    break;
                }
            }
        }
    });
    decoded
}

/// `bytes` through the supervisor's reader of worker frames.
fn as_supervisor(bytes: &[u8]) -> Decoded<FromWorker> {
    decode_with(idle_frame_reader(bytes, MAX))
}

/// `bytes` through the SDK's reader of supervisor frames.
fn as_worker(bytes: &[u8]) -> Decoded<ToWorker> {
    decode_with(frame_reader(bytes, MAX))
}

/// The codec refused a length prefix above the limit.
fn is_oversize(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<LengthDelimitedCodecError>().is_some())
}

/// The invariants of every decode: errors are typed, the buffer bounded.
fn check<T>(d: &Decoded<T>) -> Result<(), TestCaseError> {
    if let Some(e) = &d.error {
        // A cut frame at the end of the bytes is `Other` ("bytes remaining
        // on stream"): the peer hung up mid-frame.
        let kinds = [io::ErrorKind::InvalidData, io::ErrorKind::Other];
        prop_assert!(kinds.contains(&e.kind()), "untyped error: {e:?}");
    }
    // One frame and its prefix, plus the reader's own growth step.
    prop_assert!(
        d.peak_capacity <= MAX + LINK_BUFFER + 4,
        "read buffer grew to {}",
        d.peak_capacity
    );
    Ok(())
}

/// `body` with its length prefix.
fn framed(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

/// One valid frame of each kind a worker sends, encoded.
fn worker_frames() -> Vec<Vec<u8>> {
    super::hostile_samples::from_worker()
        .iter()
        .map(|f| rmp_serde::to_vec_named(f).unwrap())
        .collect()
}

/// One valid frame of each kind a supervisor sends, encoded.
fn supervisor_frames() -> Vec<Vec<u8>> {
    super::hostile_samples::to_worker()
        .iter()
        .map(|f| rmp_serde::to_vec_named(f).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_grow_the_buffer(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        check(&as_supervisor(&bytes))?;
        check(&as_worker(&bytes))?;
    }

    #[test]
    fn arbitrary_bodies_are_frames_or_invalid_data(
        body in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let bytes = framed(&body);
        for d in [as_supervisor(&bytes).error, as_worker(&bytes).error].into_iter().flatten() {
            prop_assert_eq!(d.kind(), io::ErrorKind::InvalidData, "{:?}", d);
        }
    }

    #[test]
    fn a_length_prefix_above_the_limit_is_refused_before_its_body(
        len in (MAX as u32 + 1)..=u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        let bytes = [&len.to_be_bytes()[..], &tail].concat();
        for (error, capacity) in [
            { let d = as_supervisor(&bytes); (d.error, d.peak_capacity) },
            { let d = as_worker(&bytes); (d.error, d.peak_capacity) },
        ] {
            let e = error.expect("refused");
            prop_assert!(is_oversize(&e), "not the codec's refusal: {e:?}");
            prop_assert!(capacity <= LINK_BUFFER, "allocated {capacity} for a {len}-byte prefix");
        }
    }

    #[test]
    fn every_cut_of_a_valid_stream_reads_its_whole_frames_then_stops(
        pick in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (theirs, ours) = (worker_frames(), supervisor_frames());
        let stream = |frames: &[Vec<u8>]| -> (Vec<u8>, Vec<usize>) {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for i in &pick {
                bytes.extend(framed(&frames[i.index(frames.len())]));
                ends.push(bytes.len());
            }
            (bytes, ends)
        };
        let (bytes, ends) = stream(&theirs);
        let at = cut.index(bytes.len() + 1);
        let d = as_supervisor(&bytes[..at]);
        check(&d)?;
        prop_assert_eq!(d.frames.len(), ends.iter().filter(|&&e| e <= at).count());
        let (bytes, ends) = stream(&ours);
        let at = cut.index(bytes.len() + 1);
        let d = as_worker(&bytes[..at]);
        check(&d)?;
        prop_assert_eq!(d.frames.len(), ends.iter().filter(|&&e| e <= at).count());
    }

    #[test]
    fn any_value_in_any_field_is_a_frame_or_invalid_data(
        which in any::<prop::sample::Index>(),
        node: usize,
        value in super::hostile_samples::value(),
    ) {
        for (i, frames) in [worker_frames(), supervisor_frames()].into_iter().enumerate() {
            let sample = &frames[which.index(frames.len())];
            let body = super::hostile_samples::replace_node(sample, node, value.clone());
            let bytes = framed(&body);
            let error = if i == 0 { as_supervisor(&bytes).error } else { as_worker(&bytes).error };
            if let Some(e) = error {
                prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{:?}", e);
            }
        }
    }
}

/// A worker's hello whose unknown field `deep` holds `levels` times the
/// opening bytes `open` (one array, map or extension each) around a nil.
fn deep_hello(open: &[u8], levels: usize) -> Vec<u8> {
    let mut hello = b"\x81\xa5Hello\x84\xa7version\x04\xa3pid\x01\xa5agent\xa1a\xa4deep".to_vec();
    for _ in 0..levels {
        hello.extend_from_slice(open);
    }
    hello.push(0xc0);
    framed(&hello)
}

/// Runs `f` on a thread with the stack of a tokio worker thread (2 MiB),
/// where the supervisor's reader and the SDK's session run.
fn on_a_worker_threads_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no stack overflow, no panic");
}

/// Regression: nested values where a frame has an unknown field, which
/// serde skips by walking it, recursively. Under MessagePack's default
/// depth limit (1024), 800 nested arrays (an 800-byte frame) overflowed
/// a 2 MiB stack in a debug build and aborted the process; the decoder's
/// own bound ([`MAX_FRAME_DEPTH`]) now refuses them, and 100 000 levels
/// (within the default frame limit), as an error.
#[test]
fn deeply_nested_values_are_refused_without_exhausting_the_stack() {
    let cases = [
        deep_hello(b"\x91", 800),
        deep_hello(b"\x91", 100_000),
        deep_hello(b"\x81\xa1k", 100_000),
        deep_hello(b"\xdd\x00\x00\x00\x01", 100_000),
    ];
    on_a_worker_threads_stack(move || {
        for bytes in &cases {
            let d = decode_with::<FromWorker>(idle_frame_reader(&bytes[..], DEFAULT_MAX_FRAME_LEN));
            let e = d.error.expect("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e:?}");
            assert!(e.to_string().contains("depth limit exceeded"), "{e}");
            let d = decode_with::<ToWorker>(frame_reader(&bytes[..], DEFAULT_MAX_FRAME_LEN));
            assert_eq!(d.error.expect("refused").kind(), io::ErrorKind::InvalidData);
        }
    });
}

/// Within the bounds, nesting is skipped as before, on the same stack:
/// a frame up to [`MAX_FRAME_DEPTH`], a payload (an answer the caller
/// decodes into a struct) up to [`MAX_PAYLOAD_DEPTH`], one level more
/// refused.
#[test]
fn nesting_within_the_bounds_is_read_on_a_worker_threads_stack() {
    #[derive(Debug, serde::Deserialize)]
    struct Answer {
        #[allow(dead_code)]
        ok: bool,
    }
    /// `{"ok": true, "deep": [[…nil…]]}`, `levels` deep in all.
    fn payload(levels: usize) -> Vec<u8> {
        let mut bytes = b"\x82\xa2ok\xc3\xa4deep".to_vec();
        bytes.extend(std::iter::repeat_n(0x91, levels - 1));
        bytes.push(0xc0);
        bytes
    }
    on_a_worker_threads_stack(|| {
        // The hello's two maps, then the arrays.
        let d = as_supervisor(&deep_hello(b"\x91", MAX_FRAME_DEPTH - 3));
        assert!(d.error.is_none(), "{:?}", d.error);
        assert!(matches!(&d.frames[..], [FromWorker::Hello(h)] if h.agent == "a"));
        assert!(as_supervisor(&deep_hello(b"\x91", MAX_FRAME_DEPTH - 1))
            .error
            .is_some());
        decode_payload::<Answer>(&payload(MAX_PAYLOAD_DEPTH - 1)).expect("within the bound");
        match decode_payload::<Answer>(&payload(MAX_PAYLOAD_DEPTH)) {
            Err(rmp_serde::decode::Error::DepthLimitExceeded) => {}
            other => panic!("{other:?}"),
        }
    });
}

/// The SDK's hello exchange against a supervisor that sends `bytes` and
/// hangs up: a typed error, or a worker if the bytes were a good hello.
fn connect_against(bytes: Vec<u8>) -> Result<Worker, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let supervisor = async move {
            let _ = theirs.write_all(&bytes).await;
            let _ = theirs.shutdown().await;
            theirs // open for reading until the worker is done
        };
        let (worker, _theirs) = tokio::join!(
            tokio::time::timeout(
                TIMEOUT,
                crate::link::connect_stream(ours, settings(), None, false)
            ),
            supervisor
        );
        worker.expect("the hello exchange ends")
    })
}

/// A hello with these fields, framed.
fn hello_bytes(version: u32, min_version: Option<u32>, worker_id: u64, pulse_ms: u64, max: u32) -> Vec<u8> {
    let hello = ToWorker::Hello(SupervisorHello {
        version,
        min_version,
        worker_id,
        pulse_ms,
        max_frame_len: max,
        unhealthy_timeout_ms: None,
    });
    framed(&rmp_serde::to_vec_named(&hello).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_hello_of_arbitrary_bytes_is_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        match connect_against(bytes) {
            Err(Error::Protocol(_) | Error::Disconnected | Error::Io(_)) => {}
            other => prop_assert!(false, "{:?}", other.map(|_| "a worker")),
        }
    }

    #[test]
    fn a_hello_with_any_field_values_is_accepted_exactly_when_it_is_sane(
        version in prop_oneof![Just(PROTOCOL_VERSION), any::<u32>()],
        min_version in proptest::option::of(prop_oneof![Just(PROTOCOL_VERSION), any::<u32>()]),
        worker_id in prop_oneof![Just(WORKER_ID), any::<u64>()],
        pulse_ms in prop_oneof![Just(0u64), any::<u64>()],
        max in prop_oneof![Just(MIN_FRAME_LEN as u32 - 1), Just(u32::MAX), any::<u32>()],
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = hello_bytes(version, min_version, worker_id, pulse_ms, max);
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let sane = cut.is_none()
            && (min_version.unwrap_or(version)..=version).contains(&PROTOCOL_VERSION)
            && worker_id == WORKER_ID
            && pulse_ms > 0
            && max as usize >= MIN_FRAME_LEN;
        match connect_against(bytes) {
            Ok(worker) => {
                prop_assert!(sane, "accepted an insane hello");
                prop_assert_eq!(worker.inner.settings.max_frame_len, max as usize);
            }
            Err(Error::Version { .. } | Error::Protocol(_) | Error::Disconnected | Error::Io(_)) => {
                prop_assert!(!sane, "refused a sane hello");
            }
            Err(other) => prop_assert!(false, "untyped refusal: {other:?}"),
        }
    }
}

/// The largest pulse a hello can carry (`u64::MAX` ms) is taken as "no
/// heartbeat for a very long time", without a panic in the session.
#[tokio::test]
async fn the_largest_pulse_in_a_hello_does_not_break_the_session() {
    let (worker, mut fake) = start_with(Opts {
        pulse_ms: u64::MAX,
        ..Opts::default()
    })
    .await;
    worker.ready();
    assert_eq!(fake.next().await, FromWorker::Ready);
    worker.busy();
    assert_eq!(fake.next().await, FromWorker::Busy, "the session runs on");
    assert!(!worker.is_closed());
}
