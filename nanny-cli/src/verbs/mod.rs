//! The CLI verbs that talk to a running `nanny run` through its REST API
//! (README.md, "The `nanny` command"): their clap definitions ([`Verb`]),
//! and what each prints. The long ones have their own modules: [`reload`]
//! (progress from the event stream) and [`logs`] (the NDJSON log stream).

use std::io::Write;

use serde_json::{json, Value};

use crate::client::{table, CliError, Client, Where};

mod logs;
mod reload;

/// A selector: a worker name (`web:01`), a worker id, a pool, or `all`.
type Sel = String;

/// The verbs that talk to the API.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Verb {
    /// Show every pool's workers: pid, state, uptime, restarts, memory...
    ///
    /// One row per worker slot, in the pools' order: name, id, pool, pid,
    /// state, uptime, restarts, RSS, CPU time, requests in flight, served,
    /// and errors/warnings (captured output plus what the SDK reports).
    /// A stopped slot shows `stopped`; one waiting to restart, `down`.
    Status {
        /// Print the whole `GET /v1/status` snapshot as JSON instead (each
        /// worker's `cpu_time` filled in from `GET /v1/workers`).
        #[arg(long)]
        json: bool,
    },
    /// Resize a pool to N workers (new ones start, extra ones drain)
    Scale {
        /// The pool.
        pool: String,
        /// Its new number of workers (at least 1).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        workers: u64,
    },
    /// Start stopped workers (SEL: a worker, a pool, or `all`)
    Start {
        /// A worker name (`web:01`), a worker id, a pool, or `all`.
        sel: Sel,
    },
    /// Stop workers; their slots stay, stopped, until `start` (SEL: a
    /// worker, a pool, or `all`)
    Stop {
        /// A worker name (`web:01`), a worker id, a pool, or `all`.
        sel: Sel,
    },
    /// Replace workers by new processes, one after the other
    Restart {
        /// A worker name (`web:01`), a worker id, a pool, or `all`.
        sel: Sel,
    },
    /// Stop workers and remove their slots (the pool shrinks)
    Remove {
        /// A worker name (`web:01`), a worker id, a pool, or `all`.
        sel: Sel,
    },
    /// Zero workers' counters (messages, kills, spawns: `reset_stats`)
    ///
    /// Running workers only: a stopped worker has no process, so no
    /// counters (exit 1); over a pool or `all`, stopped slots are skipped.
    /// The served, error and restart counts are the supervisor's and stay.
    Reset {
        /// A worker name (`web:01`), a worker id, a pool, or `all`.
        sel: Sel,
    },
    /// Add a worker to a pool (a new slot); prints its name
    Add {
        /// The pool.
        pool: String,
    },
    /// Roll new workers in for old ones, without dropping a request
    ///
    /// Replaces every worker of POOL (every pool without one), one after
    /// the other: each new worker is ready before the old one drains.
    /// Prints each worker as it is replaced, e.g.
    /// `reloaded web:01 (pid 123 → 456) [1/4]`.
    Reload {
        /// Only this pool.
        pool: Option<String>,
    },
    /// Print workers' captured output (SEL: a worker, a pool, or `all`)
    Logs(logs::Args),
    /// Stop every worker; nanny itself keeps running (`start all` resumes)
    StopAll,
    /// Stop nanny: drain and stop every worker, then exit
    Shutdown {
        /// Kill the workers at once instead of draining them.
        #[arg(long)]
        hard: bool,
    },
}

/// Runs `verb` against the API `place` finds.
pub(crate) fn run(verb: Verb, place: &Where) -> Result<(), CliError> {
    let client = Client::new(place)?;
    match verb {
        Verb::Status { json } => status(&client, json),
        Verb::Scale { pool, workers } => scale(&client, &pool, workers),
        Verb::Start { sel } => act(&client, &sel, "start", "started"),
        Verb::Stop { sel } => act(&client, &sel, "stop", "stopped"),
        Verb::Restart { sel } => act(&client, &sel, "restart", "restarted"),
        Verb::Remove { sel } => act(&client, &sel, "remove", "removed"),
        Verb::Reset { sel } => act(&client, &sel, "reset", "reset"),
        Verb::StopAll => act(&client, "all", "stop", "stopped"),
        Verb::Add { pool } => add(&client, &pool),
        Verb::Reload { pool } => reload::run(&client, pool.as_deref()),
        Verb::Logs(args) => logs::run(&client, &args),
        Verb::Shutdown { hard } => shutdown(&client, hard),
    }
}

/// `nanny status [--json]`: `GET /v1/status`, with each worker's CPU time
/// from `GET /v1/workers` (the snapshot does not read it).
fn status(client: &Client, as_json: bool) -> Result<(), CliError> {
    let mut value = client.get("/v1/status", &[])?;
    table::add_cpu_times(&mut value, &client.get("/v1/workers", &[])?);
    if as_json {
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        return out(&format!("{text}\n"));
    }
    let inspect: nanny::Inspect = serde_json::from_value(value)
        .map_err(|e| CliError::Failed(format!("the status is not in the shape expected: {e}")))?;
    out(&table::render(&inspect))
}

/// `nanny scale POOL N`.
fn scale(client: &Client, pool: &str, workers: u64) -> Result<(), CliError> {
    let path = format!("/v1/pools/{}/scale", segment(pool));
    let info = client.post(&path, &json!({ "workers": workers }))?;
    let target = info["target"].as_u64().unwrap_or(workers);
    out(&format!(
        "scaled {pool} to {target} worker{}\n",
        if target == 1 { "" } else { "s" }
    ))
}

/// `POST /v1/workers/{sel}/{verb}`; prints `<done> <name>` for each.
fn act(client: &Client, sel: &str, verb: &str, done: &str) -> Result<(), CliError> {
    let answer = client.post(&format!("/v1/workers/{}/{verb}", segment(sel)), &json!({}))?;
    let names = names(&answer["done"]);
    if names.is_empty() {
        return out(&format!("nothing to {verb} in {sel}\n"));
    }
    let lines: String = names.iter().map(|n| format!("{done} {n}\n")).collect();
    out(&lines)
}

/// `nanny add POOL`.
fn add(client: &Client, pool: &str) -> Result<(), CliError> {
    let answer = client.post(&format!("/v1/pools/{}/workers", segment(pool)), &json!({}))?;
    out(&format!(
        "added {}\n",
        answer["worker"].as_str().unwrap_or("a worker")
    ))
}

/// `nanny shutdown [--hard]`.
fn shutdown(client: &Client, hard: bool) -> Result<(), CliError> {
    client.post("/v1/stop", &json!({ "hard": hard }))?;
    let how = if hard {
        "killing its workers"
    } else {
        "draining its workers"
    };
    out(&format!("nanny at {} is stopping, {how}\n", client.url_base()))
}

/// The strings of a JSON array.
fn names(v: &Value) -> Vec<String> {
    (v.as_array().into_iter().flatten())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// `s` as one URL path segment: unreserved characters and `:` kept, the
/// rest percent-encoded.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Writes `text` to stdout; a closed pipe (`nanny status | head`) is not an
/// error worth a message.
pub(crate) fn out(text: &str) -> Result<(), CliError> {
    match write_out(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(stdout_error(&e)),
        _ => Ok(()),
    }
}

/// Writes `text` to stdout and flushes it.
fn write_out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// A failed write to stdout.
fn stdout_error(e: &std::io::Error) -> CliError {
    CliError::Failed(format!("cannot write to stdout: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_one_path_segment() {
        assert_eq!(segment("web:01"), "web:01");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
