//! The multi-host tests' jobs (issue 16): what a [`Cmd::Job`] answers, and
//! the lines about jobs that the fixture writes and the `scaleout` tests
//! read: a caller's [`Outcome`] (on the `host` mode's stdout) and a worker's
//! [`Mark`] (in the exec log). Shared, by `#[path]`, by the fixture and the
//! tests, so writer and reader always agree on the format.
//!
//! [`Cmd::Job`]: super::cmd::Cmd::Job
#![allow(dead_code)] // each side uses its half

use std::fmt;

/// What the job with this token answers: the token mixed (splitmix64's
/// finalizer), so that an answer meant for another request never passes
/// for this one's.
pub(crate) fn job_answer(token: u64) -> u64 {
    let mut z = token.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How long the job with this token sleeps: `ms`, plus up to `spread`
/// more, fixed by the token (so a rerun of the same token sleeps as long).
pub(crate) fn job_ms(token: u64, ms: u64, spread: u64) -> u64 {
    ms + job_answer(token ^ 0x5eed) % (spread + 1)
}

/// What became of one request of a caller, as one line:
/// `OUTCOME <token> ok <answer> host=<host>` or `OUTCOME <token> err <error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The request's token.
    pub(crate) token: u64,
    /// The answer and the host that ran the attempt answered (`-` when the
    /// response named none), or the error's `Debug` text.
    pub(crate) result: Result<(u64, String), String>,
}

impl Outcome {
    /// The error's variant (`Deadline`, `HostLost`, `Queue`…), if an error.
    pub(crate) fn error_kind(&self) -> Option<&str> {
        let text = self.result.as_ref().err()?;
        let end = text.find(|c: char| !c.is_alphanumeric()).unwrap_or(text.len());
        Some(&text[..end])
    }

    /// Parses an `OUTCOME` line; `None` for any other line.
    pub(crate) fn parse(line: &str) -> Option<Outcome> {
        let rest = line.strip_prefix("OUTCOME ")?;
        let (token, rest) = rest.split_once(' ')?;
        let token = token.parse().ok()?;
        let result = if let Some(ok) = rest.strip_prefix("ok ") {
            let (answer, host) = ok.split_once(" host=")?;
            Ok((answer.parse().ok()?, host.to_owned()))
        } else {
            Err(rest.strip_prefix("err ")?.to_owned())
        };
        Some(Outcome { token, result })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok((answer, host)) => write!(f, "OUTCOME {} ok {answer} host={host}", self.token),
            Err(e) => write!(f, "OUTCOME {} err {e}", self.token),
        }
    }
}

/// What a worker writes in the exec log when a job starts (`EXEC`) or
/// when its attempt is cancelled (`CANCEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkKind {
    /// The handler began.
    Exec,
    /// The attempt was cancelled before the handler answered.
    Cancel,
}

/// One exec-log line: `EXEC <token> <host> <pid> <unix ms>` (or `CANCEL …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    /// Exec or cancel.
    pub(crate) kind: MarkKind,
    /// The job's token.
    pub(crate) token: u64,
    /// The host (the `host` mode's `name=`) of the worker.
    pub(crate) host: String,
    /// The worker's pid.
    pub(crate) pid: u32,
    /// When, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
}

impl Mark {
    /// Parses an exec-log line; `None` for a malformed one.
    pub(crate) fn parse(line: &str) -> Option<Mark> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, token, host, pid, at] = words[..] else {
            return None;
        };
        let kind = match kind {
            "EXEC" => MarkKind::Exec,
            "CANCEL" => MarkKind::Cancel,
            _ => return None,
        };
        Some(Mark {
            kind,
            token: token.parse().ok()?,
            host: host.to_owned(),
            pid: pid.parse().ok()?,
            at_ms: at.parse().ok()?,
        })
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            MarkKind::Exec => "EXEC",
            MarkKind::Cancel => "CANCEL",
        };
        write!(
            f,
            "{kind} {} {} {} {}",
            self.token, self.host, self.pid, self.at_ms
        )
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as u64)
}
