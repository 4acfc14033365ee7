//! The requests of the conformance worker (contract C of issue 15), which
//! every SDK implements: the Rust test worker's `conformance` mode,
//! `sdk/node/test/conformance-worker.js` and
//! `sdk/python/tests/conformance_worker.py`. Shared, by `#[path]`, by the
//! Rust worker and the suite (`tests/integration/conformance/`).
//!
//! A request is a MessagePack map `{"op": str, ...}`; [`Value`] is any
//! MessagePack value, kept as it came (a map's entries in wire order).
#![allow(dead_code)] // each side uses its half

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One request to a conformance worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// Answers `data` back.
    Echo {
        /// Any value.
        data: Value,
    },
    /// Answers `"slept"` after `ms` milliseconds.
    Sleep {
        /// How long.
        ms: u64,
    },
    /// Never answers; when the attempt is cancelled, emits
    /// [`CANCELLED`] with the payload `tag` (a string).
    WaitCancel {
        /// Names the attempt in the event.
        tag: String,
    },
    /// Answers the error `{kind, message}`.
    Fail {
        /// The error's kind.
        kind: String,
        /// Its message.
        message: String,
    },
    /// Says `Busy`, answers `"busy"`, says `Ready` `ms` milliseconds later.
    BusyFor {
        /// How long it stays busy.
        ms: u64,
    },
    /// Blocks its event loop synchronously (no heartbeat meanwhile) for
    /// `ms` milliseconds, then answers `"unblocked"`.
    Block {
        /// How long.
        ms: u64,
    },
    /// With a TCP or Unix connection attached: writes [`attachment_line`]
    /// to it, closes it, answers `"written"`.
    Attachment,
    /// Answers an [`Identity`].
    Whoami,
}

/// The names of the [`Op`]s (the `op` of a request).
pub(crate) const OPS: &[&str] = &[
    "echo",
    "sleep",
    "wait_cancel",
    "fail",
    "busy_for",
    "block",
    "attachment",
    "whoami",
];

/// The event a worker emits when a [`Op::WaitCancel`] attempt is cancelled.
pub(crate) const CANCELLED: &str = "cancelled";

/// The error kind of a request whose `op` the worker does not know; the
/// error's message is the op.
pub(crate) const UNKNOWN_OP: &str = "unknown-op";

/// A broadcast `E` comes back as an event of this prefix and `E`, with the
/// broadcast's payload.
pub(crate) const ECHO_PREFIX: &str = "echo:";

/// The variable naming the directory of the kill hooks' marks.
pub(crate) const DIR_ENV: &str = "CONFORMANCE_DIR";

/// What an [`Op::Attachment`] request writes to its connection.
pub(crate) fn attachment_line(lang: &str) -> String {
    format!("conformance {lang}\n")
}

/// The file a worker's soft-kill hook (`soft`) or hard-kill hook (`hard`)
/// writes in [`DIR_ENV`]: `<NANNY_WORKER_ID>.<hook>`, holding `<hook>`.
pub(crate) fn mark_name(worker_id: u64, hook: &str) -> String {
    format!("{worker_id}.{hook}")
}

/// What [`Op::Whoami`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The worker's pid as the host sees it.
    pub(crate) pid: u32,
    /// `rust`, `node` or `python`.
    pub(crate) lang: String,
    /// Its SDK's count of requests in flight, this one included.
    pub(crate) in_flight: u32,
}

/// Any MessagePack value, as decoded (integers keep their sign class, a
/// map its entries in order), encoded back the same way.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A negative integer (as MessagePack decoders report them).
    Int(i64),
    /// A non-negative integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bin`.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, entries in wire order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A `str`.
    pub(crate) fn str(text: &str) -> Self {
        Value::Str(text.to_owned())
    }

    /// A map with `str` keys.
    pub(crate) fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Self {
        Value::Map(entries.into_iter().map(|(k, v)| (Value::str(k), v)).collect())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::Uint(n) => s.serialize_u64(*n),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(text) => s.serialize_str(text),
            Value::Bin(bytes) => s.serialize_bytes(bytes),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Builds a [`Value`] from whatever the decoder found.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any MessagePack value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(if n >= 0 {
            Value::Uint(n as u64)
        } else {
            Value::Int(n)
        })
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Uint(n))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::str(text))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::Str(text))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(bytes))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}
