//! What `hostile_frames` mutates: one valid frame of every kind each side
//! sends, and any MessagePack value to put in place of any part of one.

use std::collections::BTreeMap;
use std::fmt;

use proptest::prelude::*;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::protocol::*;

/// Any MessagePack value (maps with string keys, as every frame's are).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::UInt(n) => s.serialize_u64(*n),
            Value::Int(n) => s.serialize_i64(*n),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bin(v) => s.serialize_bytes(v),
            Value::Array(v) => v.serialize(s),
            Value::Map(m) => m.serialize(s),
        }
    }
}

/// Reads any value back, keeping strings and bytes apart.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any MessagePack value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut items = BTreeMap::new();
        while let Some((k, v)) = map.next_entry()? {
            items.insert(k, v);
        }
        Ok(Value::Map(items))
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl Value {
    /// The nodes of the tree, in pre-order.
    fn count(&self) -> usize {
        1 + match self {
            Value::Array(v) => v.iter().map(Value::count).sum(),
            Value::Map(m) => m.values().map(Value::count).sum(),
            _ => 0,
        }
    }

    /// Replaces node `n` (pre-order) with `with`; returns how many nodes
    /// were passed when `n` is not in this subtree.
    fn replace(&mut self, n: usize, with: &Value) -> Result<(), usize> {
        if n == 0 {
            *self = with.clone();
            return Ok(());
        }
        let mut n = n - 1;
        let children: Box<dyn Iterator<Item = &mut Value>> = match self {
            Value::Array(v) => Box::new(v.iter_mut()),
            Value::Map(m) => Box::new(m.values_mut()),
            _ => return Err(1),
        };
        let mut passed = 1;
        for child in children {
            match child.replace(n, with) {
                Ok(()) => return Ok(()),
                Err(k) => {
                    n -= k;
                    passed += k;
                }
            }
        }
        Err(passed)
    }
}

/// `frame` (MessagePack) with its node `node` (modulo their number, in
/// pre-order) replaced by `with`: the whole frame, a variant's fields, one field, an element of a list.
pub(super) fn replace_node(frame: &[u8], node: usize, with: Value) -> Vec<u8> {
    let mut tree: Value = rmp_serde::from_slice(frame).expect("a sample decodes as a value");
    let n = node % tree.count();
    tree.replace(n, &with).expect("the node is in the tree");
    rmp_serde::to_vec(&tree).expect("a value encodes")
}

/// Any value, nested a few levels.
pub(super) fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::UInt),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,24}".prop_map(Value::Str),
        prop_oneof![Just("Ok"), Just("Err"), Just("Id"), Just("Pid"), Just("Stats")]
            .prop_map(|s| Value::Str(s.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4).prop_map(Value::Map),
        ]
    })
}

const ID: Uuid = Uuid::from_bytes([0x5a; 16]);

/// One frame of every kind a worker sends, with every nested variant.
pub(super) fn from_worker() -> Vec<FromWorker> {
    let hello = WorkerHello {
        version: PROTOCOL_VERSION,
        pid: 1,
        agent: "x".into(),
        capabilities: vec![CAP_FD_CHANNEL.into(), "later".into()],
    };
    let response = |outcome, stream| FromWorker::Response {
        id: ID,
        attempt: 1,
        outcome,
        stream,
    };
    let ask = |question| FromWorker::Ask { id: 3, question };
    let publish = |to| FromWorker::Publish { to, data: vec![1] };
    vec![
        FromWorker::Hello(hello),
        FromWorker::Ready,
        FromWorker::Busy,
        response(Outcome::Ok(ByteBuf::from(vec![0xc0])), false),
        response(Outcome::Err(RemoteError::new("k", "m")), true),
        FromWorker::Accepted { id: ID, attempt: 2 },
        FromWorker::Ack { id: ID, attempt: 2 },
        FromWorker::Emit {
            event: "e".into(),
            payload: vec![],
        },
        FromWorker::Heartbeat(Heartbeat {
            rss_bytes: 1 << 40,
            in_flight: 2,
            lag_us: 3,
            uptime_ms: 4,
            served: 5,
            runtime_memory: [("heap_used".to_owned(), 6)].into(),
        }),
        FromWorker::Listening { on: true },
        FromWorker::ConnectionTaken { id: ID, attempt: 1 },
        FromWorker::ConnectionBounced { id: ID, attempt: 1 },
        FromWorker::ConnectionClosed { id: ID },
        publish(Recipients::Public),
        publish(Recipients::Group("g".into())),
        publish(Recipients::Private(WorkerAddr::Id(2))),
        publish(Recipients::Private(WorkerAddr::Name("a:01".into()))),
        publish(Recipients::Confirmation),
        FromWorker::Query {
            id: 1,
            query: Query::ClusterInfo,
        },
        FromWorker::Query {
            id: 2,
            query: Query::Stats,
        },
        FromWorker::Confirmed {
            identifier: "c".into(),
        },
        ask(Question::Event {
            event: "e".into(),
            payload: vec![1],
        }),
        ask(Question::Kill {
            target: Target::Pid(9),
            code: 1,
        }),
        ask(Question::Kill {
            target: Target::Id(9),
            code: 1,
        }),
        ask(Question::Kill {
            target: Target::Name("a:01".into()),
            code: 1,
        }),
        ask(Question::Spawn {
            pool: "p".into(),
            count: 2,
            respawn: true,
            args: vec!["--x".into()],
            cpus: Some(vec![0, 1]),
        }),
        ask(Question::RestartMe),
        FromWorker::Closing { code: 0 },
    ]
}

/// One frame of every kind a supervisor sends, with every nested variant.
pub(super) fn to_worker() -> Vec<ToWorker> {
    let request = |attachment| {
        ToWorker::Request(RequestFrame {
            id: ID,
            attempt: 1,
            created_at_ms: 1_700_000_000_000,
            payload: vec![0x91, 0x01],
            attachment,
        })
    };
    let meta = MessageMeta {
        id: 1,
        name: "a:01".into(),
        pid: 2,
        pool: "a".into(),
    };
    let info = ClusterInfo {
        supervisor_pid: 1,
        pools: vec![PoolMembers {
            name: "a".into(),
            workers: vec![Member {
                id: 1,
                name: "a:01".into(),
                pid: 2,
            }],
        }],
    };
    vec![
        ToWorker::Hello(SupervisorHello {
            version: PROTOCOL_VERSION,
            min_version: Some(MIN_PROTOCOL_VERSION),
            worker_id: 7,
            pulse_ms: 1000,
            max_frame_len: 1 << 20,
            unhealthy_timeout_ms: None,
        }),
        request(None),
        request(Some(AttachmentKind::Tcp)),
        request(Some(AttachmentKind::Stream)),
        ToWorker::Cancel { id: ID, attempt: 1 },
        ToWorker::Broadcast {
            event: "e".into(),
            payload: vec![1],
        },
        ToWorker::SoftKill,
        ToWorker::HardKill,
        ToWorker::Drain,
        ToWorker::Message {
            kind: MessageKind::Group,
            meta,
            data: vec![1],
        },
        ToWorker::QueryAnswer {
            id: 1,
            answer: Answer::ClusterInfo(info),
        },
        ToWorker::QueryAnswer {
            id: 2,
            answer: Answer::Stats(WorkerCounters::default()),
        },
        ToWorker::Answer {
            id: 3,
            outcome: Outcome::Err(RemoteError::new("refused", "no")),
        },
        ToWorker::Exit { code: 3 },
    ]
}

#[test]
fn every_sample_survives_the_value_round_trip() {
    // Else a mutation would change more than the one node it replaces.
    for frame in from_worker() {
        let bytes = rmp_serde::to_vec_named(&frame).unwrap();
        let again = replace_node(&bytes, 0, rmp_serde::from_slice(&bytes).unwrap());
        assert_eq!(rmp_serde::from_slice::<FromWorker>(&again).unwrap(), frame);
    }
    for frame in to_worker() {
        let bytes = rmp_serde::to_vec_named(&frame).unwrap();
        let again = replace_node(&bytes, 0, rmp_serde::from_slice(&bytes).unwrap());
        assert_eq!(rmp_serde::from_slice::<ToWorker>(&again).unwrap(), frame);
    }
}
