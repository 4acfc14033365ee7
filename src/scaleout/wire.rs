//! What travels through the shared queue: the encodings of a request entry
//! and of a reply (MessagePack), with the typed errors that cross hosts.
//!
//! A request entry has one field, [`REQUEST_FIELD`], whose value is the
//! MessagePack array `[rid, reply, timeout, attempts, payload]`: the rid
//! (UUID v4, a string), the caller's reply address (a string), the
//! per-attempt timeout in ms (`0` for none), the most attempts (`0` for
//! unlimited) and the request's own MessagePack bytes (bin). One field
//! rather than five: a host reads (and its client parses) two values an
//! entry instead of ten. A reply entry holds the replies one completion
//! call wrote to one caller: a field per reply, named by the request's
//! `rid`, whose value is the [`Reply`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, RemoteError};
use crate::retries::Retries;

/// The name of a request entry's one field.
pub(crate) const REQUEST_FIELD: &str = "m";

/// A request entry's value, as written.
#[derive(Serialize)]
struct Written<'a>(
    &'a str,
    &'a str,
    u64,
    u32,
    #[serde(with = "serde_bytes")] &'a [u8],
);

/// A request entry's value, as read.
#[derive(Deserialize)]
struct Read(String, String, u64, u32, #[serde(with = "serde_bytes")] Vec<u8>);

/// A request as its caller writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) rid: String,
    /// The caller's reply stream.
    pub(crate) reply_to: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    /// The most attempts; `None`: unlimited.
    pub(crate) max_attempts: Option<u32>,
}

impl Request {
    /// The most attempts `retries` allows.
    pub(crate) fn attempts_of(retries: Retries) -> Option<u32> {
        match retries {
            Retries::Limited(n) => Some(n.saturating_add(1)),
            Retries::Unlimited => None,
        }
    }

    /// The entry's one field and its value, for the backend to write.
    pub(crate) fn fields(&self) -> [(&'static str, Vec<u8>); 1] {
        let ms = self
            .timeout
            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
        let attempts = self.max_attempts.unwrap_or(0);
        let value = Written(&self.rid, &self.reply_to, ms, attempts, &self.payload);
        let bytes = rmp_serde::to_vec(&value).expect("a request always encodes");
        [(REQUEST_FIELD, bytes)]
    }

    /// Reads an entry's fields back; `None` if its field is missing or
    /// does not decode, or the rid or reply address is empty.
    pub(crate) fn parse<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Option<Request> {
        let (_, value) = (fields.into_iter()).find(|(name, _)| *name == REQUEST_FIELD.as_bytes())?;
        let Read(rid, reply_to, timeout, attempts, payload) = rmp_serde::from_slice(value).ok()?;
        Some(Request {
            rid: Some(rid).filter(|r| !r.is_empty())?,
            reply_to: Some(reply_to).filter(|r| !r.is_empty())?,
            payload,
            timeout: Some(timeout).filter(|&t| t > 0).map(Duration::from_millis),
            max_attempts: Some(attempts).filter(|&a| a > 0),
        })
    }

    /// Retries left for a run after `deliveries` deliveries (this one
    /// included): a reclaim counts as an attempt.
    pub(crate) fn retries_left(&self, deliveries: u32) -> Retries {
        match self.max_attempts {
            None => Retries::Unlimited,
            Some(max) => Retries::Limited(max.saturating_sub(deliveries)),
        }
    }
}

/// The answer an executing host writes to its caller's reply stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    /// The executing host.
    pub(crate) host: String,
    /// Its worker that answered (0 when none did).
    pub(crate) worker: u64,
    /// The attempt, reclaims counted.
    pub(crate) attempt: u32,
    pub(crate) outcome: Outcome,
}

/// A reply's answer or typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The answer's MessagePack bytes.
    Answer(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A typed error.
    Failed(WireError),
}

/// The errors that cross hosts, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireError {
    Handler {
        kind: String,
        message: String,
    },
    Timeout {
        attempts: u32,
    },
    WorkerExited {
        attempts: u32,
        worker: u64,
    },
    HostLost {
        attempts: u32,
    },
    DrainTimeout {
        attempts: u32,
    },
    Deadline,
    PoolFailed {
        pool: String,
    },
    NoWorkers {
        pool: String,
    },
    NoProtocol {
        pool: String,
    },
    PayloadTooLarge {
        size: u64,
        max: u64,
    },
    /// The caller cancelled (nobody waits for this one).
    Cancelled,
    /// The worker answered with a response stream, which stays on its
    /// host.
    StreamAcrossHosts {
        host: String,
    },
    /// Any other error, in words.
    Other(String),
}

impl WireError {
    /// `e` as data, its attempt counts raised by `earlier` (the deliveries
    /// before this run).
    pub(crate) fn from_error(e: &Error, earlier: u32) -> WireError {
        let a = |n: u32| n.saturating_add(earlier);
        match e {
            Error::Handler(r) => WireError::Handler {
                kind: r.kind.clone(),
                message: r.message.clone(),
            },
            Error::Timeout { attempts } => WireError::Timeout {
                attempts: a(*attempts),
            },
            Error::WorkerExited { attempts, worker } => WireError::WorkerExited {
                attempts: a(*attempts),
                worker: worker.get(),
            },
            Error::HostLost { attempts } => WireError::HostLost { attempts: *attempts },
            Error::DrainTimeout { attempts } => WireError::DrainTimeout {
                attempts: a(*attempts),
            },
            Error::Deadline => WireError::Deadline,
            Error::PoolFailed { pool } => WireError::PoolFailed { pool: pool.clone() },
            Error::NoWorkers { pool } => WireError::NoWorkers { pool: pool.clone() },
            Error::NoProtocol { pool } => WireError::NoProtocol { pool: pool.clone() },
            Error::PayloadTooLarge { size, max } => WireError::PayloadTooLarge {
                size: *size as u64,
                max: *max as u64,
            },
            other => WireError::Other(other.to_string()),
        }
    }

    /// The caller's typed error.
    pub(crate) fn into_error(self) -> Error {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        match self {
            WireError::Handler { kind, message } => Error::Handler(RemoteError::new(kind, message)),
            WireError::Timeout { attempts } => Error::Timeout { attempts },
            WireError::WorkerExited { attempts, worker } => Error::WorkerExited {
                attempts,
                worker: crate::WorkerId(worker),
            },
            WireError::HostLost { attempts } => Error::HostLost { attempts },
            WireError::DrainTimeout { attempts } => Error::DrainTimeout { attempts },
            WireError::Deadline => Error::Deadline,
            WireError::PoolFailed { pool } => Error::PoolFailed { pool },
            WireError::NoWorkers { pool } => Error::NoWorkers { pool },
            WireError::NoProtocol { pool } => Error::NoProtocol { pool },
            WireError::PayloadTooLarge { size: s, max } => Error::PayloadTooLarge {
                size: size(s),
                max: size(max),
            },
            WireError::Cancelled => Error::Queue("the request was cancelled".into()),
            WireError::StreamAcrossHosts { host } => Error::StreamAcrossHosts { host },
            WireError::Other(text) => Error::Queue(format!("on the executing host: {text}")),
        }
    }
}

impl Reply {
    /// The reply's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("a reply always encodes")
    }

    /// A reply read back; `None` if it does not decode.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Reply> {
        rmp_serde::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            rid: "r-1".into(),
            reply_to: "{nanny:ns}:reply:a".into(),
            payload: vec![0x91, 0x01, 0xff],
            timeout: Some(Duration::from_millis(250)),
            max_attempts: Some(3),
        }
    }

    #[test]
    fn a_request_entry_round_trips() {
        let r = request();
        let fields = r.fields();
        let parsed = Request::parse(fields.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())));
        assert_eq!(parsed, Some(r));
        let unlimited = Request {
            timeout: None,
            max_attempts: None,
            ..request()
        };
        let fields = unlimited.fields();
        let parsed = Request::parse(fields.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())));
        assert_eq!(parsed, Some(unlimited));
    }

    #[test]
    fn a_missing_or_bad_field_is_malformed() {
        let fields = request().fields();
        let (name, value) = (fields[0].0.as_bytes(), fields[0].1.as_slice());
        assert_eq!(Request::parse([(b"other".as_slice(), value)]), None, "no field");
        assert_eq!(
            Request::parse([(name, &value[..value.len() - 1])]),
            None,
            "cut short"
        );
        assert_eq!(
            Request::parse([(name, b"\xc1".as_slice())]),
            None,
            "not MessagePack"
        );
        let empty = rmp_serde::to_vec(&Written("", "to", 0, 0, b"p")).expect("encodes");
        assert_eq!(Request::parse([(name, empty.as_slice())]), None, "an empty rid");
        let wrong = rmp_serde::to_vec(&("r", "to", "soon", 0, 1)).expect("encodes");
        assert_eq!(Request::parse([(name, wrong.as_slice())]), None, "a bad timeout");
        // Other fields beside it are ignored.
        let extra = [(b"x".as_slice(), b"y".as_slice()), (name, value)];
        assert_eq!(Request::parse(extra), Some(request()));
    }

    #[test]
    fn a_reclaim_counts_as_an_attempt() {
        let r = request(); // 3 attempts
        assert_eq!(r.retries_left(1), Retries::Limited(2));
        assert_eq!(r.retries_left(3), Retries::Limited(0));
        assert_eq!(r.retries_left(5), Retries::Limited(0));
        let e = WireError::from_error(&Error::Timeout { attempts: 1 }, 2);
        assert_eq!(e.into_error().attempts(), Some(3));
    }

    #[test]
    fn replies_and_typed_errors_round_trip() {
        let errors = [
            Error::Handler(RemoteError::new("handler", "boom")),
            Error::HostLost { attempts: 2 },
            Error::Deadline,
            Error::NoWorkers { pool: "p".into() },
        ];
        for e in errors {
            let reply = Reply {
                host: "b".into(),
                worker: 7,
                attempt: 1,
                outcome: Outcome::Failed(WireError::from_error(&e, 0)),
            };
            let back = Reply::decode(&reply.encode()).expect("decodes");
            assert_eq!(back, reply);
            let Outcome::Failed(w) = back.outcome else {
                unreachable!()
            };
            assert_eq!(w.into_error().to_string(), e.to_string());
        }
        let ok = Reply {
            host: "a".into(),
            worker: 1,
            attempt: 2,
            outcome: Outcome::Answer(vec![1, 2, 3]),
        };
        assert_eq!(Reply::decode(&ok.encode()), Some(ok));
        assert_eq!(Reply::decode(b"\xc1 not msgpack"), None);
    }
}
