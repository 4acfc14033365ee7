//! `nanny-test-worker`: the one worker fixture of nanny's integration tests.
//!
//! Started by a supervisor (`NANNY_FD` is set) it is a worker. It answers the
//! [`Cmd`] requests of `tests/support/cmd.rs`, and its behaviour at start is
//! set by the environment:
//!
//! | `TEST_MODE`            | behaviour                                                        |
//! |------------------------|------------------------------------------------------------------|
//! | `normal` (default)     | connect, `ready()`, serve                                        |
//! | `never-ready`          | connect and serve, but never say ready                           |
//! | `bad-hello`            | raw: a hello with a wrong protocol version                       |
//! | `garbage-after-ready`  | raw: hello, `Ready`, then a frame that is not MessagePack        |
//! | `oversize-after-ready` | raw: hello, `Ready`, then a length prefix above the frame limit  |
//! | `crash-on-start`       | `exit(3)` at once                                                |
//! | `slow`                 | sleep `TEST_DELAY_MS` before each request                        |
//! | `ignore-soft-kill`     | a soft-kill hook that never finishes (only SIGKILL ends it)      |
//! | `hangup-after-ready`   | raw: hello, `Ready`, then close the socket and live on           |
//! | `raw-no-caps`          | raw: a version-3 hello declaring no capabilities, `Ready`, then answer `Echo` (a request with an attachment: a `got-attachment` error; a message from a worker: exit 9) |
//! | `mute`                 | raw: takes SIGTERM, hello, `Ready`, then never writes again and ignores the soft kill |
//! | `late-hello`           | raw: takes SIGTERM, says hello only after the supervisor's `SoftKill`, exits 0 |
//! | `deaf-then-exit`       | raw: hello, `Ready`, then shut the socket down for reading (the supervisor's writes fail) and exit 0 by itself 500 ms later |
//! | `deaf`                 | never reads its fd channel (no attachment is ever accepted); ready only on `set-ready` |
//! | `conn-echo`            | `normal`, and takes balanced connections (`incoming()`): answers each line of each with `w<NANNY_WORKER_ID> <line>\n` until end of file |
//! | `conn-close-after`     | `conn-echo`, but drops its `Incoming` (`Listening { on: false }`) after `TEST_CONN_LIMIT` connections (default 1); serves those to their end |
//! | hostile modes          | `half-frame`, `max-length`, `exit-in-hello`, `answer-twice`, `flood-stdout`, `stop-self`, `stray-fds`, `wrong-kind-fds`, `fd-bundle`: see `hostile` |
//! | `descendants`          | `normal`, after starting three `sleep`s that outlive a worker without containment (in its group, `setsid`, orphaned): see `tree` |
//! | `conformance`          | the Rust SDK's conformance worker (issue 15's contract C, ops in `tests/support/conformance.rs`): see `conformance` |
//! | `conn-bounce`          | raw: hello with `fd-channel` + `connections`, `Ready`, `Listening { on: true }`, then bounces every connection offer (closing its fd); heartbeats, ignores requests, exits 0 on a kill or end of file |
//!
//! `TEST_MODE_MAX_ID=N` applies the mode to workers whose `NANNY_WORKER_ID`
//! is at most `N` only; later workers (replacements) are `normal`.
//! `TEST_MODE_MIN_ID=N` applies it to workers whose id is at least `N`
//! only; earlier ones are `normal`. `TEST_MODE_ELSE=MODE` names another
//! mode than `normal` for the workers outside the range.
//! `TEST_READY_ON=EVENT` says ready on that broadcast instead of at once.
//! `TEST_SOFT_KILL_MARK=DIR` gives an SDK-based worker a soft-kill hook
//! that writes the file `DIR/<its pid>` (a kill's `Exit` runs it too).
//! `TEST_SLOW_LOGICAL_ID` / `TEST_SLOW_MS` make one slot slow for [`Cmd::Work`].
//! A serving worker takes SIGUSR1 without dying: it emits [`GOT_SIGUSR1`].
//!
//! Run by hand as `nanny-test-worker supervise N [signals] [KEY=VALUE…]` it
//! is a supervisor of `N` workers (itself, self-forked): it prints `PID <pid>`
//! per worker, then `READY`; then it takes commands on stdin (requests,
//! counts) until killed (tests SIGKILL or SIGSTOP it to check that its
//! workers do not outlive it, or that a paused supervisor stops no healthy
//! worker), or with `signals` takes SIGTERM as a soft kill and a second one
//! as a hard kill (see [`supervise`]).
//!
//! A `count` broadcast (see [`cmd::COUNT`]) makes every worker report its
//! running request handlers.

//!
//! Run as `nanny-test-worker host url=… ns=… name=… [KEY=VALUE…]` it is
//! one host of the multi-host tests (issue 16): a supervisor whose pool
//! shares a request queue on Redis with other hosts, with its own workers
//! and a caller of [`Cmd::Job`] requests (see [`host`]).
//!
//! The modes live in modules of their own: `serve` (the SDK-based worker),
//! `handle` (its [`Cmd`] handler, with `asks` for the questions to the
//! supervisor), `messages` (its messaging: what it received, reported on a
//! `report` broadcast) and `conn` (its connection modes), `raw`
//! (the protocol-breaking modes), `raw_conn` (`conn-bounce`) and `raw_fds`
//! (the fd-channel hostile modes), `conformance` (the conformance worker),
//! `supervise` (the `supervise` mode) and `host` (the `host` mode, with
//! its workers' job handler).
//!
//! [`Cmd`]: cmd::Cmd
//! [`Cmd::Work`]: cmd::Cmd::Work
//! [`Cmd::Job`]: cmd::Cmd::Job
//! [`host`]: host::host
//! [`GOT_SIGUSR1`]: cmd::GOT_SIGUSR1
//! [`supervise`]: supervise::supervise

mod asks;
#[path = "../../support/cmd.rs"]
mod cmd;
mod conformance;
#[path = "../../support/conformance.rs"]
mod conformance_ops;
mod conn;
mod handle;
mod host;
mod hostile;
#[path = "../../support/jobs.rs"]
mod jobs;
#[path = "../../support/mail.rs"]
mod mail;
mod messages;
mod raw;
mod raw_conn;
mod raw_fds;
mod serve;
mod supervise;
mod tree;

use std::process::ExitCode;

use nanny_worker::protocol as p;

use raw::{raw, RawMode};
use serve::serve;
use supervise::supervise;

fn main() -> ExitCode {
    // `Cmd::Panic` panics on purpose: keep it out of the test output.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC_MESSAGE) {
            report(info);
        }
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if nanny_worker::is_worker() {
        rt.block_on(worker_main())
    } else {
        match std::env::args().nth(1).as_deref() {
            Some("supervise") => rt.block_on(supervise()),
            Some("host") => rt.block_on(host::host()),
            _ => {
                eprintln!(
                    "nanny-test-worker: run by a nanny supervisor, or as `nanny-test-worker supervise N` \
                     or `nanny-test-worker host KEY=VALUE…`"
                );
                ExitCode::from(2)
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

/// `TEST_MODE`, or `normal` for workers past `TEST_MODE_MAX_ID` or before
/// `TEST_MODE_MIN_ID`.
fn mode() -> String {
    let mode = std::env::var("TEST_MODE").unwrap_or_else(|_| "normal".into());
    let other = || std::env::var("TEST_MODE_ELSE").unwrap_or_else(|_| "normal".into());
    let id = env_u64(p::ENV_WORKER_ID);
    match (env_u64("TEST_MODE_MAX_ID"), env_u64("TEST_MODE_MIN_ID"), id) {
        (Some(max), _, Some(id)) if id > max => other(),
        (_, Some(min), Some(id)) if id < min => other(),
        _ => mode,
    }
}

/// What [`Cmd::Panic`] panics with.
const PANIC_MESSAGE: &str = "told to panic";

async fn worker_main() -> ExitCode {
    match mode().as_str() {
        "normal" | "slow" | "never-ready" | "ignore-soft-kill" | "deaf" | "conn-echo"
        | "conn-close-after" => serve().await,
        "crash-on-start" => std::process::exit(3),
        "bad-hello" => raw(RawMode::BadHello).await,
        "garbage-after-ready" => raw(RawMode::Garbage).await,
        "oversize-after-ready" => raw(RawMode::Oversize).await,
        "hangup-after-ready" => raw(RawMode::HangUp).await,
        "raw-no-caps" => raw(RawMode::NoCaps).await,
        "deaf-then-exit" => raw(RawMode::DeafThenExit).await,
        "late-hello" => raw(RawMode::LateHello).await,
        "mute" => raw(RawMode::Mute).await,
        "conn-bounce" => raw(RawMode::ConnBounce).await,
        "descendants" => tree::descendants().await,
        "conformance" => conformance::conformance().await,
        other => match hostile::hostile(other).await {
            Some(code) => code,
            None => {
                eprintln!("nanny-test-worker: unknown TEST_MODE {other:?}");
                ExitCode::from(2)
            }
        },
    }
}
