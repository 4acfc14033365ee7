//! `env_file`: `KEY=VALUE` lines, as systemd's `EnvironmentFile=` and
//! docker's `--env-file` read them (the common subset).
//!
//! Blank lines and lines whose first non-blank character is `#` are
//! skipped; an optional `export ` prefix is allowed; the value is the rest
//! of the line after the first `=`, with surrounding blanks trimmed and one
//! pair of matching quotes (`"…"` or `'…'`) removed. No variable expansion,
//! no escapes, no continuation lines.

/// A line that is not `KEY=VALUE`, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvFileError {
    /// The line's number, from 1.
    pub(crate) line: usize,
    /// What is wrong with it.
    pub(crate) message: String,
}

/// The variables of an env file's `text`, in order.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let err = |message: &str| EnvFileError {
            line: i + 1,
            message: message.to_owned(),
        };
        let (key, value) = line.split_once('=').ok_or_else(|| err("expected KEY=VALUE"))?;
        let key = key.trim();
        if !is_name(key) {
            return Err(err(
                "expected a variable name (letters, digits, '_'; not starting with a digit) before '='",
            ));
        }
        vars.push((key.to_owned(), unquote(value.trim()).to_owned()));
    }
    Ok(vars)
}

fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_comments_quotes_and_export() {
        let text =
            "# a comment\n\nA=1\n  B = two words  \nexport C=\"quoted # not a comment\"\nD='x'\nE=\nF=a=b\n";
        let vars = parse(text).unwrap();
        let want = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "quoted # not a comment"),
            ("D", "x"),
            ("E", ""),
            ("F", "a=b"),
        ];
        let want: Vec<_> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(vars, want);
    }

    #[test]
    fn a_bad_line_is_named_by_number() {
        let e = parse("A=1\n# fine\nnot a pair\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("KEY=VALUE"), "{e:?}");
        let e = parse("1A=x").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("variable name"), "{e:?}");
    }
}
