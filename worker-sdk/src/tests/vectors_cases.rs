//! The messages of the test vectors (`vectors.rs`): one of every kind
//! each way, as the Rust types build them; `vectors.rs` encodes them and
//! adds the decode-only and invalid frames.

use std::collections::BTreeMap;

use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::protocol::*;

pub(super) const ID: Uuid = Uuid::from_bytes([0x11; 16]);
pub(super) const ID2: Uuid = Uuid::from_bytes([
    0x6f, 0x1c, 0x3b, 0x2a, 0x90, 0x4d, 0x4e, 0x21, 0x8f, 0x03, 0x5a, 0x7b, 0xc4, 0xd2, 0x19, 0xe8,
]);
/// MessagePack of a payload, as the Rust API puts in `bin` fields.
pub(super) fn mp<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode_payload(v).expect("encodes")
}

pub(super) fn canonical_to_worker() -> Vec<(&'static str, ToWorker)> {
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

pub(super) fn canonical_from_worker() -> Vec<(&'static str, FromWorker)> {
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
