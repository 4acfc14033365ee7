//! `nanny logs [SEL] [--follow] [--lines N]`: workers' captured output from
//! `GET /v1/logs` (NDJSON, one `{"time","pool","worker","stream","line"}`
//! object per line), printed as nanny prints them on its stderr:
//! `web:01| the line`.

use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use crate::client::{CliError, Client};

/// The longest NDJSON line read (a worker line is capped well below it).
const MAX_LINE: u64 = 1 << 20;

/// `nanny logs`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A worker name (`web:01`), a worker id, a pool, or `all` (the default).
    sel: Option<String>,
    /// Keep printing new lines as they come, until nanny stops or Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    /// How many recent lines to print first (per pool, at most what nanny
    /// keeps).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
    lines: usize,
}

/// Prints the lines, following them with `--follow`.
pub(crate) fn run(client: &Client, args: &Args) -> Result<(), CliError> {
    let lines = args.lines.to_string();
    let mut query = vec![("lines", lines.as_str())];
    if let Some(sel) = &args.sel {
        query.push(("target", sel.as_str()));
    }
    if args.follow {
        query.push(("follow", "true"));
    }
    let response = client.get_stream("/v1/logs", &query)?;
    let mut reader = BufReader::new(response.into_body().into_reader());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::Unreachable(format!("the log stream broke off: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        let Some(text) = render(&buf) else { continue };
        match super::write_out(&text) {
            Ok(()) => {}
            // The reader has gone (`nanny logs -f | head`): done, or a
            // follower would read the stream forever for nobody.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(super::stdout_error(&e)),
        }
    }
}

/// One NDJSON line as printed, or `None` for a blank one.
fn render(raw: &[u8]) -> Option<String> {
    let raw = std::str::from_utf8(raw).ok()?.trim_end();
    if raw.is_empty() {
        return None;
    }
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return Some(format!("{raw}\n"));
    };
    if let Some(n) = v["lagged"].as_u64() {
        return Some(format!("(nanny: {n} lines missed, this reader was too slow)\n"));
    }
    let worker = v["worker"].as_str().unwrap_or("?");
    let line = v["line"].as_str().unwrap_or_default();
    Some(format!("{worker}| {line}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_print_as_on_nannys_stderr() {
        let raw = br#"{"time":"2026-01-01T00:00:00Z","pool":"web","worker":"web:01","stream":"stdout","line":"hi"}"#;
        assert_eq!(render(raw).unwrap(), "web:01| hi\n");
        assert_eq!(
            render(b"{\"lagged\":3}\n").unwrap(),
            "(nanny: 3 lines missed, this reader was too slow)\n"
        );
        assert_eq!(render(b"\n"), None);
    }
}
