//! Renders the test vectors as `vectors/frames.json`, by hand: the
//! key order of every MessagePack map is kept (it is the wire order, and
//! an encoder's output is compared byte for byte), which a JSON map type
//! that sorts its keys would lose.

use std::fmt::Write;

use super::vectors::{Kind, Vector};

const ABOUT: &str = "Frames of the nanny worker protocol (PROTOCOL.md), generated from the Rust \
types by worker-sdk/src/tests/vectors.rs. frame: the whole frame in hex, its 4-byte big-endian \
length included. value: the body as a MessagePack value, in JSON; a bin is {\"$bin\": hex}; map \
keys in wire order. canonical: encoding value gives exactly frame. same_as: a decode-only frame \
that a receiver must read as that vector's message. invalid: a frame a receiver must reject as a \
protocol error.";

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn string(s: &str) -> String {
    serde_json::to_string(s).expect("a string renders")
}

/// A MessagePack value as compact JSON.
fn value(v: &rmpv::Value, out: &mut String) {
    use rmpv::Value as V;
    match v {
        V::Nil => out.push_str("null"),
        V::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Integer(i) => out.push_str(&i.to_string()),
        V::F32(f) => out.push_str(&f.to_string()),
        V::F64(f) => out.push_str(&f.to_string()),
        V::String(s) => out.push_str(&string(s.as_str().expect("UTF-8 in the vectors"))),
        V::Binary(b) => {
            let _ = write!(out, "{{\"$bin\": \"{}\"}}", hex(b));
        }
        V::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(item, out);
            }
            out.push(']');
        }
        V::Map(entries) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&string(k.as_str().expect("string keys in the vectors")));
                out.push_str(": ");
                value(item, out);
            }
            out.push('}');
        }
        V::Ext(kind, data) => {
            let _ = write!(out, "{{\"$ext\": [{kind}, \"{}\"]}}", hex(data));
        }
    }
}

/// The body as JSON, if the frame holds exactly one MessagePack value.
fn body_value(frame: &[u8]) -> Option<String> {
    let (len, body) = frame.split_at(4);
    if u32::from_be_bytes(len.try_into().ok()?) as usize != body.len() {
        return None;
    }
    let mut rest = body;
    let v = rmpv::decode::read_value(&mut rest).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut out = String::new();
    value(&v, &mut out);
    Some(out)
}

/// The whole file.
pub(super) fn render(vectors: &[Vector]) -> String {
    let mut out = format!("{{\n  \"about\": {},\n  \"vectors\": [\n", string(ABOUT));
    for (i, v) in vectors.iter().enumerate() {
        let direction = if v.to_worker { "to_worker" } else { "from_worker" };
        let _ = write!(
            out,
            "    {{\n      \"name\": {},\n      \"direction\": \"{direction}\",\n      \"frame\": \"{}\",\n",
            string(v.name),
            hex(&v.frame)
        );
        if let Some(body) = body_value(&v.frame) {
            let _ = writeln!(out, "      \"value\": {body},");
        }
        let last = match &v.kind {
            Kind::Canonical(_) => "\"canonical\": true".to_owned(),
            Kind::SameAs(name) => format!("\"canonical\": false,\n      \"same_as\": {}", string(name)),
            Kind::Invalid(why) => format!("\"canonical\": false,\n      \"invalid\": {}", string(why)),
        };
        let comma = if i + 1 < vectors.len() { "," } else { "" };
        let _ = write!(out, "      {last}\n    }}{comma}\n");
    }
    out.push_str("  ]\n}\n");
    out
}

/// The vectors as PROTOCOL.md's Appendix B: each frame's length and
/// body in hex, 16 bytes a line, with its value.
pub(super) fn render_markdown(vectors: &[Vector]) -> String {
    let mut out = String::new();
    for v in vectors {
        let direction = if v.to_worker {
            "to the worker"
        } else {
            "from the worker"
        };
        let what = match &v.kind {
            Kind::Canonical(_) => String::new(),
            Kind::SameAs(name) => format!("; decode-only, reads as \"{name}\""),
            Kind::Invalid(why) => format!("; **invalid**: {why}"),
        };
        let (len, body) = v.frame.split_at(4);
        let declared = u32::from_be_bytes(len.try_into().expect("4 bytes"));
        let _ = write!(
            out,
            "\n**{}** ({direction}{what})\n\n```\nlength {}  ({declared})\n",
            v.name,
            spaced(len)
        );
        for (i, line) in body.chunks(16).enumerate() {
            let _ = writeln!(
                out,
                "{} {}",
                if i == 0 { "body  " } else { "      " },
                spaced(line)
            );
        }
        if let Some(value) = body_value(&v.frame) {
            let _ = writeln!(out, "value  {value}");
        }
        out.push_str("```\n");
    }
    out
}

fn spaced(bytes: &[u8]) -> String {
    let hexes: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hexes.join(" ")
}
