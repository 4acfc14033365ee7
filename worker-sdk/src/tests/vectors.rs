//! The test vectors every SDK checks itself against
//! (`worker-sdk/vectors/frames.json`, PROTOCOL.md section 3): frames as
//! bytes, with their meaning. This crate's encoder is the source of
//! truth: the file is generated here, and this test fails when the file
//! and the encoder disagree (`NANNY_UPDATE_VECTORS=1 cargo test -p
//! nanny-worker vectors` rewrites it). Each vector is also decoded back:
//! canonical ones to the message they were made from, decode-only ones to
//! the message they name, invalid ones to an error.

use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};

use super::vectors_cases::{canonical_from_worker, canonical_to_worker, mp, ID};
use super::vectors_json::{render, render_markdown};
use crate::protocol::*;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/frames.json");
const PROTOCOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
const BEGIN: &str = "<!-- vectors:begin -->\n";
const END: &str = "<!-- vectors:end -->";

/// A message either way.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Msg {
    To(ToWorker),
    From(FromWorker),
}

/// One vector: a message and its frame, or bytes a receiver must read as
/// another vector's message, or reject.
pub(super) struct Vector {
    pub(super) name: &'static str,
    pub(super) to_worker: bool,
    pub(super) frame: Vec<u8>,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    Canonical(Msg),
    SameAs(&'static str),
    Invalid(&'static str),
}

/// A frame: the body with its big-endian length.
fn framed(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

/// Bytes a receiver reads as another vector, or must reject.
fn odd_vectors() -> Vec<Vector> {
    let v = |name, to_worker, body: Vec<u8>, kind| Vector {
        name,
        to_worker,
        frame: framed(&body),
        kind,
    };
    let mut cancel_u32 = vec![0x81, 0xa6];
    cancel_u32.extend(b"Cancel");
    cancel_u32.extend([0x82, 0xa7]);
    cancel_u32.extend(b"attempt");
    cancel_u32.extend([0xce, 0, 0, 0, 2, 0xa2, b'i', b'd', 0xc4, 0x10]);
    cancel_u32.extend([0x11; 16]);
    let mut hello_extra = mp(&BTreeMap::from([("Hello", ())]));
    hello_extra.truncate(hello_extra.len() - 1); // drop the nil: the map follows
    hello_extra.extend([0x84, 0xa7]);
    hello_extra.extend(b"version");
    hello_extra.push(PROTOCOL_VERSION as u8);
    hello_extra.extend([0xa5]);
    hello_extra.extend(b"later");
    hello_extra.extend([0x92, 0x01, 0x02]);
    hello_extra.extend([0xa3, b'p', b'i', b'd', 0xcd, 0x7a, 0x69]);
    hello_extra.extend([0xa5]);
    hello_extra.extend(b"agent");
    hello_extra.push(0xb5);
    hello_extra.extend(b"nanny-worker-py/0.1.0");
    let mut uuid_str = vec![0x81, 0xa6];
    uuid_str.extend(b"Cancel");
    uuid_str.extend([0x82, 0xa2, b'i', b'd', 0xd9, 36]);
    uuid_str.extend(ID.hyphenated().to_string().as_bytes());
    uuid_str.extend([0xa7]);
    uuid_str.extend(b"attempt");
    uuid_str.push(2);
    let mut deep = vec![0x91; 40];
    deep.push(0xc0);
    let mut unknown = vec![0x81, 0xa5];
    unknown.extend(b"Bogus");
    unknown.push(0x80);
    let mut ready_nil = vec![0x81, 0xa5];
    ready_nil.extend(b"Ready");
    ready_nil.push(0xc0);
    let mut too_long = ((DEFAULT_MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    too_long.push(0xc0);
    vec![
        v("ready as a map with nil", false, ready_nil, Kind::SameAs("ready")),
        v(
            "cancel: attempt as uint 32, keys reordered",
            true,
            cancel_u32,
            Kind::SameAs("cancel"),
        ),
        v(
            "worker hello with an unknown key, keys reordered",
            false,
            hello_extra,
            Kind::SameAs("worker hello, minimal"),
        ),
        v(
            "cancel with its id as a string",
            true,
            uuid_str,
            Kind::Invalid("a UUID is bin 16, never a string"),
        ),
        v(
            "an unknown message",
            false,
            unknown,
            Kind::Invalid("not a known message"),
        ),
        v(
            "not MessagePack",
            false,
            vec![0xc1],
            Kind::Invalid("0xc1 is never used in MessagePack"),
        ),
        v(
            "nested 40 deep",
            false,
            deep,
            Kind::Invalid("frames nest less than 32 deep"),
        ),
        Vector {
            name: "a length above the default max_frame_len",
            to_worker: true,
            frame: too_long,
            kind: Kind::Invalid("8388609 > 8388608: rejected before the body is read"),
        },
    ]
}

async fn encode(msg: &Msg) -> Vec<u8> {
    match msg {
        Msg::To(m) => {
            let mut w: FrameWriter<_, ToWorker> = frame_writer(Vec::new(), DEFAULT_MAX_FRAME_LEN);
            w.send(m.clone()).await.expect("encodes");
            w.into_inner().into_inner()
        }
        Msg::From(m) => {
            let mut w: FrameWriter<_, FromWorker> = frame_writer(Vec::new(), DEFAULT_MAX_FRAME_LEN);
            w.send(m.clone()).await.expect("encodes");
            w.into_inner().into_inner()
        }
    }
}

async fn decode(to_worker: bool, frame: &[u8]) -> Option<Msg> {
    if to_worker {
        let mut r: FrameReader<_, ToWorker> = frame_reader(frame, DEFAULT_MAX_FRAME_LEN);
        r.next().await?.ok().map(Msg::To)
    } else {
        let mut r: FrameReader<_, FromWorker> = frame_reader(frame, DEFAULT_MAX_FRAME_LEN);
        r.next().await?.ok().map(Msg::From)
    }
}

async fn all_vectors() -> Vec<Vector> {
    let mut all = Vec::new();
    let to = canonical_to_worker()
        .into_iter()
        .map(|(n, m)| (n, true, Msg::To(m)));
    let from = canonical_from_worker()
        .into_iter()
        .map(|(n, m)| (n, false, Msg::From(m)));
    for (name, to_worker, msg) in to.chain(from) {
        let frame = encode(&msg).await;
        all.push(Vector {
            name,
            to_worker,
            frame,
            kind: Kind::Canonical(msg),
        });
    }
    all.extend(odd_vectors());
    all
}

#[tokio::test]
async fn the_vectors_file_is_what_this_encoder_writes_and_every_vector_decodes_as_it_says() {
    let vectors = all_vectors().await;
    for v in &vectors {
        let got = decode(v.to_worker, &v.frame).await;
        match &v.kind {
            Kind::Canonical(msg) => assert_eq!(got.as_ref(), Some(msg), "{}", v.name),
            Kind::SameAs(other) => {
                let Some(Kind::Canonical(msg)) = vectors.iter().find(|o| o.name == *other).map(|o| &o.kind)
                else {
                    panic!("{}: no canonical vector {other:?}", v.name)
                };
                assert_eq!(got.as_ref(), Some(msg), "{}", v.name);
            }
            Kind::Invalid(_) => assert_eq!(got, None, "{} must not decode", v.name),
        }
    }
    let text = render(&vectors);
    let doc = std::fs::read_to_string(PROTOCOL).expect("PROTOCOL.md");
    let (start, end) = (
        doc.find(BEGIN).expect("the begin marker") + BEGIN.len(),
        doc.find(END).expect("the end marker"),
    );
    let with_vectors = format!("{}{}{}", &doc[..start], render_markdown(&vectors), &doc[end..]);
    if std::env::var_os("NANNY_UPDATE_VECTORS").is_some() {
        std::fs::write(FILE, &text).expect("vectors written");
        std::fs::write(PROTOCOL, &with_vectors).expect("PROTOCOL.md written");
        return;
    }
    let file = std::fs::read_to_string(FILE).unwrap_or_default();
    let update = "NANNY_UPDATE_VECTORS=1 cargo test -p nanny-worker vectors";
    assert!(file == text, "{FILE} is not what this encoder writes: {update}");
    assert!(
        doc == with_vectors,
        "PROTOCOL.md's Appendix B is not the vectors: {update}"
    );
}
