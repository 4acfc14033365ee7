//! Decoding captured lines: a pool's `encoding`, a WHATWG label
//! (`encoding_rs`), default UTF-8; invalid bytes become U+FFFD.
//!
//! Supported: the encodings in which byte 0x0A is always a newline and
//! never part of another character, so the library's split of the output
//! into lines (on 0x0A bytes) is right: UTF-8, the single-byte encodings
//! (`latin1` / `windows-1252`, `iso-8859-*`, `koi8-r`, …) and the
//! ASCII-compatible multi-byte ones (`shift_jis`, `euc-jp`, `gbk`,
//! `gb18030`, `big5`, `euc-kr`). Refused, as a config error: UTF-16LE and
//! BE (a newline is two bytes, one of them 0x0A, so lines would be split in
//! the middle of characters), ISO-2022-JP (stateful) and `replacement`.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::Encoding;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A pool's output encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder(&'static Encoding);

impl Default for Decoder {
    fn default() -> Self {
        Self(encoding_rs::UTF_8)
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Decoder {
    /// The decoder of a WHATWG `label` (case-insensitive, spaces around
    /// ignored), if it is one of the supported encodings.
    pub(crate) fn for_label(label: &str) -> Result<Self, String> {
        let Some(encoding) = Encoding::for_label(label.as_bytes()) else {
            return Err(format!(
                "unknown encoding {label:?}: expected a WHATWG encoding label such as \"utf-8\", \"latin1\", \"windows-1252\" or \"shift_jis\""
            ));
        };
        if !encoding.is_ascii_compatible() || encoding == encoding_rs::REPLACEMENT {
            return Err(format!(
                "encoding {label:?} ({}) is not supported: output is split into lines on 0x0A bytes, so only ASCII-compatible encodings (UTF-8, latin1, shift_jis, …) decode right",
                encoding.name()
            ));
        }
        Ok(Self(encoding))
    }

    /// `bytes` (one line) as text, invalid sequences replaced by U+FFFD.
    /// Borrows when the bytes are valid UTF-8 and the encoding is UTF-8.
    pub(crate) fn decode<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        if self.0 == encoding_rs::UTF_8 {
            return String::from_utf8_lossy(bytes);
        }
        self.0.decode_without_bom_handling(bytes).0
    }
}

impl<'de> Deserialize<'de> for Decoder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Label;
        impl Visitor<'_> for Label {
            type Value = Decoder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoding label such as \"utf-8\" or \"latin1\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decoder, E> {
                Decoder::for_label(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_the_default_and_lossy() {
        let d = Decoder::default();
        assert_eq!(d.decode("été".as_bytes()), "été");
        assert!(matches!(d.decode(b"plain"), Cow::Borrowed("plain")));
        assert_eq!(d.decode(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn labels_decode_their_encodings() {
        let latin1 = Decoder::for_label("latin1").unwrap();
        assert_eq!(latin1.decode(b"\xe9t\xe9"), "été");
        assert_eq!(Decoder::for_label(" Windows-1252 ").unwrap(), latin1);
        let sjis = Decoder::for_label("shift_jis").unwrap();
        assert_eq!(sjis.decode(b"\x82\xa0"), "あ");
        assert_eq!(Decoder::for_label("UTF8").unwrap(), Decoder::default());
    }

    #[test]
    fn unknown_and_line_unsafe_labels_are_refused() {
        let e = Decoder::for_label("klingon").unwrap_err();
        assert!(e.contains("unknown encoding \"klingon\""), "{e}");
        for label in ["utf-16le", "utf-16be", "iso-2022-jp", "iso-2022-kr"] {
            let e = Decoder::for_label(label).unwrap_err();
            assert!(e.contains("not supported"), "{label}: {e}");
        }
    }
}
