//! The REST API's JSON bodies under attack, against a real `nanny run`:
//! every route that changes things, with arbitrary bytes, truncated JSON,
//! wrong types per field, huge numbers, deep nesting, oversize bodies,
//! other methods, and unknown ids and pool names. Every answer is a 4xx
//! with a JSON error (a 413 for a body over the limit), nothing acts, and
//! nanny serves on.

use std::io::{Read, Write};
use std::net::TcpStream;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::support::*;

/// The API's body limit (`nanny-cli/src/api/body.rs`, README.md).
const MAX_BODY: usize = 64 * 1024;

const ONE_WEB: &str = r#"
[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 1000"]
plain = true
workers = 1
"#;

/// The routes that change things: `{name}` stands for a pool or selector.
const ROUTES: &[&str] = &[
    "/v1/pools/{name}/scale",
    "/v1/pools/{name}/workers",
    "/v1/pools/{name}/restart",
    "/v1/workers/{name}/start",
    "/v1/workers/{name}/stop",
    "/v1/workers/{name}/restart",
    "/v1/workers/{name}/remove",
    "/v1/workers/{name}/reset",
    "/v1/reload",
    "/v1/stop",
];

/// Names that reach the running pool or worker.
const REAL: &[&str] = &["web", "web:01", "all"];

/// How a body is framed on the wire.
#[derive(Debug, Clone)]
enum Framing {
    /// With its `Content-Length`.
    Length(Vec<u8>),
    /// A `Content-Length` of this much, and no body sent.
    Declared(u64),
    /// `Transfer-Encoding: chunked`, one chunk.
    Chunked(Vec<u8>),
}

impl Framing {
    fn bytes(&self) -> &[u8] {
        match self {
            Framing::Length(b) | Framing::Chunked(b) => b,
            Framing::Declared(_) => &[],
        }
    }

    /// Its kind, without the bytes.
    fn kind(&self) -> &'static str {
        match self {
            Framing::Length(_) => "length",
            Framing::Declared(_) => "declared",
            Framing::Chunked(_) => "chunked",
        }
    }

    fn oversize(&self) -> bool {
        match self {
            Framing::Declared(n) => *n > MAX_BODY as u64,
            _ => self.bytes().len() > MAX_BODY,
        }
    }
}

/// One request of the barrage.
#[derive(Debug, Clone)]
struct Attack {
    method: &'static str,
    route: &'static str,
    name: String,
    body: Framing,
}

impl Attack {
    fn post(route: &'static str, name: &str, body: &[u8]) -> Self {
        Attack {
            method: "POST",
            route,
            name: name.to_owned(),
            body: Framing::Length(body.to_vec()),
        }
    }

    fn path(&self) -> String {
        let encoded: String = (self.name.bytes())
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.route.replace("{name}", &encoded)
    }

    /// Whether nanny would do what the request asks: a POST whose body it
    /// takes, to a target that exists. The barrage leaves those out.
    fn would_act(&self) -> bool {
        let bytes = self.body.bytes();
        if self.method != "POST" || self.body.oversize() {
            return false;
        }
        let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
            Some(json!({}))
        } else {
            serde_json::from_slice::<Value>(bytes).ok()
        };
        let Some(Value::Object(fields)) = parsed else {
            return false;
        };
        let only = |key: &str| fields.keys().all(|k| k == key);
        let real = REAL.contains(&self.name.as_str());
        match self.route {
            "/v1/pools/{name}/scale" => {
                real && only("workers")
                    && fields
                        .get("workers")
                        .and_then(Value::as_u64)
                        .is_some_and(|n| (1..=4096).contains(&n))
            }
            "/v1/reload" => {
                only("pool") && matches!(fields.get("pool"), None | Some(Value::Null))
                    || fields.get("pool") == Some(&json!("web"))
            }
            "/v1/stop" => only("hard") && matches!(fields.get("hard"), None | Some(Value::Bool(_))),
            _ => real && fields.is_empty(),
        }
    }
}

/// What a request got.
#[derive(Debug)]
enum Answer {
    /// A status and the body, as JSON (`Null` if it is not).
    Got(u16, Value, String),
    /// The connection ended without an answer.
    Dropped(String),
}

/// Sends `attack` over a connection of its own, in raw HTTP/1.1, and
/// reads the answer until nanny closes the connection.
fn send(addr: &str, token: &str, attack: &Attack) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        attack.method,
        attack.path()
    )
    .into_bytes();
    match &attack.body {
        Framing::Length(b) => {
            request.extend(format!("Content-Length: {}\r\n\r\n", b.len()).bytes());
            request.extend(b);
        }
        Framing::Declared(n) => request.extend(format!("Content-Length: {n}\r\n\r\n").bytes()),
        Framing::Chunked(b) => {
            request.extend(format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n", b.len()).bytes());
            request.extend(b);
            request.extend(b"\r\n0\r\n\r\n");
        }
    }
    // A write cut short (nanny answered and closed first) still leaves the
    // answer to read.
    let _ = stream.write_all(&request);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Answer::Dropped(e.to_string());
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer::Dropped(format!("no answer: {text:?}"));
    };
    let status = (head.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer::Got(status, serde_json::from_str(body).unwrap_or(Value::Null), text)
}

/// Sends `attack` and asserts what the API must answer; the status (0:
/// dropped).
#[track_caller]
fn check(addr: &str, token: &str, attack: &Attack) -> u16 {
    let answer = &send(addr, token, attack);
    let shown = || {
        let body = String::from_utf8_lossy(attack.body.bytes());
        let cut: String = body.chars().take(200).collect();
        format!(
            "{} {} {cut:?} ({} framing)",
            attack.method,
            attack.path(),
            attack.body.kind()
        )
    };
    match answer {
        Answer::Got(status, body, text) => {
            assert!((400..500).contains(status), "{}: {text}", shown());
            assert!(
                body["error"]["code"].is_string(),
                "{}: not a JSON error: {text}",
                shown()
            );
            if attack.body.oversize() && attack.method == "POST" {
                assert_eq!(*status, 413, "{}: {text}", shown());
                assert_eq!(body["error"]["code"], "payload_too_large");
            } else {
                assert_ne!(*status, 413, "{}: {text}", shown());
            }
            *status
        }
        // Only a chunked body over the limit may find the connection
        // reset: nanny answers 413 and closes while the rest is unread.
        Answer::Dropped(why) => {
            assert!(
                matches!(attack.body, Framing::Chunked(_)) && attack.body.oversize(),
                "{}: dropped: {why}",
                shown()
            );
            0
        }
    }
}

/// The table: one case of each kind, the findings among them.
fn table() -> Vec<Attack> {
    let deep = |n: usize| "[".repeat(n).into_bytes();
    let mut cases = vec![
        // Arrays were read as structs: `[5]` resized, `[]` stopped nanny.
        Attack::post("/v1/pools/{name}/scale", "web", b"[5]"),
        Attack::post("/v1/stop", "", b"[]"),
        Attack::post("/v1/stop", "", b"[true]"),
        Attack::post("/v1/reload", "", b"[null]"),
        Attack::post("/v1/workers/{name}/stop", "all", b"[]"),
        // Bodies on the routes that take none.
        Attack::post("/v1/pools/{name}/workers", "web", br#"{"workers": 2}"#),
        Attack::post("/v1/workers/{name}/restart", "web:01", b"null"),
        Attack::post(
            "/v1/pools/{name}/scale",
            "web",
            br#"{"workers": 18446744073709551616}"#,
        ),
        Attack::post(
            "/v1/pools/{name}/scale",
            "web",
            br#"{"workers": 18446744073709551615}"#,
        ),
        Attack::post("/v1/pools/{name}/scale", "web", br#"{"workers": 1e400}"#),
        Attack::post("/v1/pools/{name}/scale", "web", br#"{"workers": -1}"#),
        Attack::post("/v1/pools/{name}/scale", "web", br#"{"workers": 4097}"#),
        Attack::post("/v1/pools/{name}/scale", "nope", br#"{"workers": 2}"#),
        Attack::post("/v1/reload", "", br#"{"pool": "nope"}"#),
        Attack::post("/v1/workers/{name}/stop", "w999999", b""),
        Attack::post("/v1/workers/{name}/stop", "web:99", b""),
        Attack::post("/v1/workers/{name}/stop", "web:xx", b""),
        Attack::post("/v1/pools/{name}/scale", "web", &deep(MAX_BODY - 1)),
        Attack::post("/v1/pools/{name}/scale", "web", &deep(100_000)),
    ];
    for route in ["/v1/pools/{name}/scale", "/v1/stop", "/v1/workers/{name}/reset"] {
        for body in [Framing::Declared(10 << 30), Framing::Chunked(deep(100_000))] {
            cases.push(Attack {
                method: "POST",
                route,
                name: "web".into(),
                body,
            });
        }
    }
    cases
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            vec((".{0,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A number JSON cannot carry, or a field cannot take.
fn huge_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e400".to_owned()),
        Just("-1e400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
        (20usize..400).prop_map(|n| format!("9{}", "0".repeat(n))),
        (4097u64..u64::MAX).prop_map(|n| n.to_string()),
        Just("0".to_owned()),
        Just("1.5".to_owned()),
    ]
}

/// A body: arbitrary bytes, a valid one truncated, a field of the wrong
/// type or out of range, deep nesting, or a valid one (sent only to an
/// unknown target: see [`Attack::would_act`]).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![Just("workers"), Just("pool"), Just("hard"), Just("other")];
    let valid = proptest::sample::select(
        &[
            "",
            "{}",
            r#"{"workers": 3}"#,
            r#"{"pool": "nope"}"#,
            r#"{"pool": "web"}"#,
            r#"{"hard": true}"#,
        ][..],
    );
    prop_oneof![
        valid.clone().prop_map(|v| v.as_bytes().to_vec()),
        vec(any::<u8>(), 0..300),
        (valid, any::<Index>()).prop_map(|(v, i)| v.as_bytes()[..i.index(v.len() + 1)].to_vec()),
        (field.clone(), json_value()).prop_map(|(k, v)| json!({ k: v }).to_string().into_bytes()),
        (field, huge_number()).prop_map(|(k, n)| format!(r#"{{"{k}": {n}}}"#).into_bytes()),
        (1usize..MAX_BODY / 2, prop_oneof![Just("["), Just(r#"{"a":"#)])
            .prop_map(|(n, open)| open.repeat(n / open.len()).into_bytes()),
    ]
}

fn attack() -> impl Strategy<Value = Attack> {
    let name = prop_oneof![
        4 => proptest::sample::select(REAL).prop_map(str::to_owned),
        2 => proptest::sample::select(&["nope", "w999999", "web:99", "web:0", "18446744073709551616", ""][..]).prop_map(str::to_owned),
        // Never a real name: no pool, id or `all` starts with `zz`.
        3 => vec(any::<u8>(), 0..40).prop_map(|b| format!("zz{}", String::from_utf8_lossy(&b))),
    ];
    let method = prop_oneof![8 => Just("POST"), 1 => Just("PUT"), 1 => Just("PATCH"), 1 => Just("DELETE")];
    (method, proptest::sample::select(ROUTES), name, body()).prop_map(|(method, route, name, body)| Attack {
        method,
        route,
        name,
        body: Framing::Length(body),
    })
}

#[test]
fn hostile_bodies_get_json_4xx_and_nanny_serves_on() {
    let file = config("api-bodies", ONE_WEB);
    let mut nanny = Nanny::start(&["run"], &file);
    nanny.wait_ready();
    let api = Api::of(&file);
    let addr = api.url.trim_start_matches("http://").to_owned();
    let pid = |api: &Api| api.get("/v1/pools/web").1["slots"][0]["pid"].as_u64();
    let before = pid(&api).expect("web:01 runs");
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    let tally = |status| *statuses.borrow_mut().entry(status).or_default() += 1;
    for attack in table() {
        tally(check(&addr, &api.token, &attack));
    }
    let config = Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&attack(), |attack| {
            if !attack.would_act() {
                tally(check(&addr, &api.token, &attack));
            }
            Ok(())
        })
        .unwrap();
    let statuses = statuses.into_inner();
    eprintln!("answers by status (0: dropped): {statuses:?}");
    assert!(statuses.values().sum::<usize>() > 250, "{statuses:?}");
    assert!(nanny.exited().is_none(), "nanny exited: {}", nanny.stderr());
    let (status, body) = api.get("/v1/status");
    assert_eq!(status, 200, "{body}");
    let slots = api.get("/v1/pools/web").1["slots"].as_array().map(Vec::len);
    assert_eq!(slots, Some(1), "the pool was resized");
    assert_eq!(pid(&api), Some(before), "web:01 was replaced or stopped");
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}
