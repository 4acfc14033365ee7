//! nanny side by side with its Rust peers, on the same workloads: see
//! `benches/peers/README.md`.
//!
//! ```text
//! nanny-peers SYSTEM [--round N] [--rows all|rtt|bursts|life|dispatch] [--label NAME]
//! ```
//!
//! SYSTEM is `raw`, `raw-batched`, `tokio`, `nanny`, `nanny-ct` (nanny on a
//! current-thread runtime), `nanny-node`, `nanny-lpm`, `nanny-python` (nanny
//! with Node, LPM-style Node or Python workers: [`worker_kinds`]) or
//! `tonic`, or `skeleton` / `skeleton-ct` (the floor of nanny's
//! architecture on either runtime: [`skeleton`], round trip and burst rows
//! only). Each result
//! is printed as one JSON line. Workers are this same binary: nanny's are
//! recognised by [`nanny_worker::is_worker`], the others are started as
//! `nanny-peers --serve ROLE` with their socket as standard input.

mod bare_tokio;
mod children;
mod frames;
mod nanny_peer;
mod raw;
mod report;
mod skeleton;
mod tonic_peer;
mod worker_kinds;
mod workloads;

use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use nanny_peer::Nanny;
use skeleton::direct::Direct;
use skeleton::task::OneTask;
use skeleton::Skeleton;
use worker_kinds::CurrentThread;
use workloads::{run, Rows};

fn main() -> ExitCode {
    if nanny_worker::is_worker() {
        nanny_peer::serve_worker();
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return match serve(args.get(1).map_or("", String::as_str)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nanny-peers worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match parse(&args) {
        Ok((system, report, rows)) => {
            measure(&system, &report, rows);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nanny-peers: {e}\nusage: nanny-peers raw|raw-batched|tokio|nanny|nanny-ct|nanny-ct-spin|nanny-node|nanny-lpm|nanny-python|tonic|skeleton|skeleton-ct|skeleton-direct [--round N] [--rows all|rtt|bursts|life|dispatch] [--label NAME]");
            ExitCode::from(2)
        }
    }
}

/// A worker of the raw, bare-tokio or tonic peer.
fn serve(role: &str) -> std::io::Result<()> {
    let socket = || children::inherited_socket().map(UnixStream::from);
    match role {
        "raw" => frames::serve_blocking(socket()?, false),
        "raw-batched" => frames::serve_blocking(socket()?, true),
        "tokio" => frames::serve_tokio(socket()?),
        "tonic" => tonic_peer::serve_worker(),
        other => Err(std::io::Error::other(format!("no worker role {other:?}"))),
    }
}

/// The system, its report and the rows to run, from the command line.
fn parse(args: &[String]) -> Result<(String, report::Report, Rows), String> {
    let system = args.first().ok_or("no system named")?.clone();
    let (mut round, mut rows, mut label) = (0, Rows::All, system.clone());
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--round" => round = value.parse().map_err(|_| format!("bad round {value:?}"))?,
            "--label" => label = value.clone(),
            "--rows" => {
                rows = match value.as_str() {
                    "all" => Rows::All,
                    "rtt" => Rows::RoundTrip,
                    "bursts" => Rows::Bursts,
                    "life" => Rows::Lifecycle,
                    "dispatch" => Rows::Dispatch,
                    _ => return Err(format!("bad rows {value:?}")),
                }
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok((system, report::Report::new(round, label), rows))
}

fn measure(system: &str, report: &report::Report, rows: Rows) {
    match system {
        "raw" => run::<raw::Raw<false>>(report, rows),
        "raw-batched" => run::<raw::Raw<true>>(report, rows),
        "tokio" => run::<bare_tokio::BareTokio>(report, rows),
        "nanny" => run::<Nanny<worker_kinds::Rust>>(report, rows),
        "nanny-ct" => run::<Nanny<CurrentThread<worker_kinds::Rust>>>(report, rows),
        "nanny-ct-spin" => run::<Nanny<worker_kinds::Spinning<worker_kinds::Rust>>>(report, rows),
        "nanny-node" => run::<Nanny<worker_kinds::Node>>(report, rows),
        "nanny-lpm" => run::<Nanny<worker_kinds::Lpm>>(report, rows),
        "nanny-python" => run::<Nanny<worker_kinds::Python>>(report, rows),
        "tonic" => run::<tonic_peer::Tonic>(report, rows),
        "skeleton" | "skeleton-ct" | "skeleton-direct" if matches!(rows, Rows::All | Rows::Lifecycle) => {
            eprintln!("nanny-peers: the skeletons restart nothing: --rows rtt, bursts or dispatch");
            std::process::exit(2);
        }
        "skeleton" => run::<Skeleton<OneTask<false>>>(report, rows),
        "skeleton-ct" => run::<Skeleton<OneTask<true>>>(report, rows),
        "skeleton-direct" => run::<Skeleton<Direct>>(report, rows),
        other => {
            eprintln!("nanny-peers: no system {other:?}");
            std::process::exit(2);
        }
    }
}
