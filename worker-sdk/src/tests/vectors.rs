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
use serde_bytes::ByteBuf;
use uuid::Uuid;

use super::vectors_json::{render, render_markdown};
use crate::protocol::*;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/frames.json");
const PROTOCOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
const BEGIN: &str = "<!-- vectors:begin -->\n";
const END: &str = "<!-- vectors:end -->";
const ID: Uuid = Uuid::from_bytes([0x11; 16]);
const ID2: Uuid = Uuid::from_bytes([
    0x6f, 0x1c, 0x3b, 0x2a, 0x90, 0x4d, 0x4e, 0x21, 0x8f, 0x03, 0x5a, 0x7b, 0xc4, 0xd2, 0x19, 0xe8,
]);

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

/// MessagePack of a payload, as the Rust API puts in `bin` fields.
fn mp<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode_payload(v).expect("encodes")
}

fn canonical_to_worker() -> Vec<(&'static str, ToWorker)> {
    vec![
        (
            "supervisor hello",
            ToWorker::Hello(SupervisorHello {
                version: PROTOCOL_VERSION,
                min_version: Some(MIN_PROTOCOL_VERSION),
                worker_id: 7,
                pulse_ms: 1000,
                max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
                unhealthy_timeout_ms: Some(10_000),
            }),
        ),
        (
            "request",
            ToWorker::Request(RequestFrame {
                id: ID2,
                attempt: 1,
                created_at_ms: 1_764_720_000_123,
                payload: mp(&("hello", 42)),
                attachment: None,
            }),
        ),
        (
            "request with a tcp attachment",
            ToWorker::Request(RequestFrame {
                id: ID2,
                attempt: 2,
                created_at_ms: 1_764_720_000_123,
                payload: mp(&()),
                attachment: Some(AttachmentKind::Tcp),
            }),
        ),
        ("cancel", ToWorker::Cancel { id: ID, attempt: 2 }),
        (
            "broadcast",
            ToWorker::Broadcast {
                event: "reload-config".into(),
                payload: mp(&BTreeMap::from([("version", 3)])),
            },
        ),
        ("soft kill", ToWorker::SoftKill),
        ("hard kill", ToWorker::HardKill),
        ("drain", ToWorker::Drain),
        (
            "message",
            ToWorker::Message {
                kind: MessageKind::Private,
                meta: MessageMeta {
                    id: 3,
                    name: "api:01".into(),
                    pid: 4242,
                    pool: "api".into(),
                },
                data: mp(&"hi"),
            },
        ),
        (
            "query answer: stats",
            ToWorker::QueryAnswer {
                id: 0,
                answer: Answer::Stats(WorkerCounters {
                    public_sent: 1,
                    ..Default::default()
                }),
            },
        ),
        (
            "answer: ok",
            ToWorker::Answer {
                id: 5,
                outcome: Outcome::Ok(ByteBuf::from(mp(&()))),
            },
        ),
        (
            "answer: err",
            ToWorker::Answer {
                id: 6,
                outcome: Outcome::Err(RemoteError::new("no-handler", "no handler for \"quota\"")),
            },
        ),
        (
            "query answer: cluster info",
            ToWorker::QueryAnswer {
                id: 1,
                answer: Answer::ClusterInfo(ClusterInfo {
                    supervisor_pid: 4000,
                    pools: vec![PoolMembers {
                        name: "api".into(),
                        workers: vec![Member {
                            id: 3,
                            name: "api:01".into(),
                            pid: 4242,
                        }],
                    }],
                }),
            },
        ),
        ("exit", ToWorker::Exit { code: -1 }),
        ("exit with a positive code", ToWorker::Exit { code: 3 }),
    ]
}

fn canonical_from_worker() -> Vec<(&'static str, FromWorker)> {
    let hello = |capabilities: Vec<String>| {
        FromWorker::Hello(WorkerHello {
            version: PROTOCOL_VERSION,
            pid: 31337,
            agent: "nanny-worker-py/0.1.0".into(),
            capabilities,
        })
    };
    vec![
        ("worker hello, minimal", hello(vec![])),
        (
            "worker hello with capabilities",
            hello(
                Capabilities {
                    fd_channel: true,
                    connections: true,
                    messaging: true,
                    exit: true,
                }
                .names(),
            ),
        ),
        ("ready", FromWorker::Ready),
        ("busy", FromWorker::Busy),
        (
            "response: ok",
            FromWorker::Response {
                id: ID2,
                attempt: 1,
                outcome: Outcome::Ok(ByteBuf::from(mp(&BTreeMap::from([("echo", "hello")])))),
                stream: false,
            },
        ),
        (
            "response: err",
            FromWorker::Response {
                id: ID2,
                attempt: 1,
                outcome: Outcome::Err(RemoteError::new("handler", "boom")),
                stream: false,
            },
        ),
        (
            "response with a stream",
            FromWorker::Response {
                id: ID2,
                attempt: 1,
                outcome: Outcome::Ok(ByteBuf::from(mp(&()))),
                stream: true,
            },
        ),
        ("accepted", FromWorker::Accepted { id: ID2, attempt: 2 }),
        ("ack", FromWorker::Ack { id: ID2, attempt: 1 }),
        (
            "emit",
            FromWorker::Emit {
                event: "cancelled".into(),
                payload: mp(&"tag-1"),
            },
        ),
        (
            "heartbeat",
            FromWorker::Heartbeat(Heartbeat {
                rss_bytes: 31_457_280,
                in_flight: 2,
                lag_us: 150,
                uptime_ms: 65_000,
                served: 1_000_000,
                runtime_memory: BTreeMap::new(),
            }),
        ),
        (
            "heartbeat with runtime memory",
            FromWorker::Heartbeat(Heartbeat {
                rss_bytes: 52_428_800,
                in_flight: 0,
                lag_us: 4_000,
                uptime_ms: 1_200,
                served: 12,
                runtime_memory: BTreeMap::from([
                    ("heap_total".into(), 7_556_896),
                    ("heap_used".into(), 4_371_152),
                ]),
            }),
        ),
        ("listening", FromWorker::Listening { on: true }),
        (
            "connection taken",
            FromWorker::ConnectionTaken { id: ID, attempt: 1 },
        ),
        (
            "connection bounced",
            FromWorker::ConnectionBounced { id: ID, attempt: 1 },
        ),
        ("connection closed", FromWorker::ConnectionClosed { id: ID }),
        (
            "publish: group",
            FromWorker::Publish {
                to: Recipients::Group("api".into()),
                data: mp(&"hello group"),
            },
        ),
        (
            "publish: private by name",
            FromWorker::Publish {
                to: Recipients::Private(WorkerAddr::Name("api:02".into())),
                data: mp(&1),
            },
        ),
        (
            "publish: public",
            FromWorker::Publish {
                to: Recipients::Public,
                data: vec![0xc0],
            },
        ),
        (
            "query: cluster info",
            FromWorker::Query {
                id: 0,
                query: Query::ClusterInfo,
            },
        ),
        (
            "confirmed",
            FromWorker::Confirmed {
                identifier: "warm".into(),
            },
        ),
        (
            "ask: event",
            FromWorker::Ask {
                id: 1,
                question: Question::Event {
                    event: "quota".into(),
                    payload: mp(&10),
                },
            },
        ),
        (
            "ask: kill by name",
            FromWorker::Ask {
                id: 2,
                question: Question::Kill {
                    target: Target::Name("api:02".into()),
                    code: 0,
                },
            },
        ),
        (
            "ask: restart me",
            FromWorker::Ask {
                id: 3,
                question: Question::RestartMe,
            },
        ),
        (
            "ask: spawn",
            FromWorker::Ask {
                id: 4,
                question: Question::Spawn {
                    pool: "jobs".into(),
                    count: 2,
                    respawn: true,
                    args: vec!["--queue=high".into()],
                    cpus: Some(vec![0, 1]),
                },
            },
        ),
        (
            "query: stats",
            FromWorker::Query {
                id: 1,
                query: Query::Stats,
            },
        ),
        ("closing", FromWorker::Closing { code: 3 }),
    ]
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
