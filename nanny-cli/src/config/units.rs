//! The file's units: durations (`"500ms"`, `"5s"`, `"2m"`, `"1h30m"`) and
//! byte sizes (`"700MB"`, `"1GiB"`, or a plain integer of bytes).
//!
//! A small parser of our own rather than `humantime`: the file needs five
//! units, and the messages name what was expected in this file's terms.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as a string of `<number><unit>` parts: units `ms`,
/// `s`, `m`, `h`, `d`; a number may have a fraction (`"1.5s"`); parts add
/// up (`"1m30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span(pub(crate) Duration);

/// A duration that may be `"none"`, for the settings whose bound can be
/// turned off (`drain_timeout`, `force_stop_delay`, `unhealthy_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptSpan(pub(crate) Option<Duration>);

/// A number of bytes: an integer, or a string `<number><unit>` with the
/// units `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) and `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024), case-insensitive, a fraction allowed (`"1.5GiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) u64);

const DURATION_EXPECTED: &str = "a duration such as \"500ms\", \"5s\", \"2m\" or \"1h30m\"";
const SIZE_EXPECTED: &str = "a size such as \"700MB\", \"1GiB\" or a number of bytes";

/// Parses a duration (see [`Span`]).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: expected {DURATION_EXPECTED}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let (number, tail) = split_number(rest).ok_or_else(bad)?;
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let seconds = match &tail[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &tail[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Parses a byte size (see [`Bytes`]).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?}: expected {SIZE_EXPECTED}");
    let (number, unit) = split_number(text.trim()).ok_or_else(bad)?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = number * scale as f64;
    if bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The leading decimal number of `text` and what follows it.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let digits = &text[..end];
    if digits.is_empty() || digits.starts_with('.') || digits.ends_with('.') {
        return None;
    }
    Some((digits.parse().ok()?, &text[end..]))
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Span).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for OptSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "none" {
            return Ok(OptSpan(None));
        }
        parse_duration(&text)
            .map(|d| OptSpan(Some(d)))
            .map_err(|e| de::Error::custom(format!("{e}, or \"none\"")))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor)
    }
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SIZE_EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
        u64::try_from(v)
            .map(Bytes)
            .map_err(|_| E::custom(format!("invalid size {v}: expected {SIZE_EXPECTED}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        parse_size(v).map(Bytes).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_in_every_unit_and_compound() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("5s"), Ok(ms(5000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        for bad in ["", "5", "s", "5 s", "5sec", "-1s", ".5s", "5.s", "1m30", "1e3s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("expected a duration such as"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn sizes_decimal_and_binary() {
        assert_eq!(parse_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("64 kb"), Ok(64_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10b"), Ok(10));
    }

    #[test]
    fn bad_sizes_say_what_was_expected() {
        for bad in ["", "MB", "1.5B", "12 parsecs", "-1MB", "1e3"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("expected a size such as"), "{bad:?}: {e}");
        }
    }
}
