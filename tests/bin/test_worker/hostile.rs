//! The hostile modes (issue 14, "Bad input"): workers that try to hurt the
//! supervisor rather than merely break the protocol.
//!
//! | `TEST_MODE`     | behaviour                                                                  |
//! |-----------------|----------------------------------------------------------------------------|
//! | `half-frame`    | raw: hello, `Ready`, then a length prefix of 200 and 20 bytes of its body, then silence (no heartbeat, no more bytes) |
//! | `max-length`    | raw: hello, `Ready`, then the length prefix `0xFFFFFFFF` and a little body |
//! | `exit-in-hello` | raw: the first half of a hello frame, then `exit(0)`                       |
//! | `answer-twice`  | raw: hello, `Ready`, then answers every `Echo` twice                       |
//! | `flood-stdout`  | `normal`, plus a thread that writes `TEST_FLOOD_MIB` MiB (default 64) to stdout in one endless line, then one `flood done` line |
//! | `stop-self`     | `normal`, but SIGSTOPs itself 200 ms after start                           |
//! | `stray-fds`, `wrong-kind-fds`, `fd-bundle` | raw: descriptors on the fd channel nobody asked for, at each `Echo`: see `raw_fds` |

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::FLOOD_DONE;
use crate::raw::{raw, RawMode};
use crate::raw_fds::FdAbuse;
use crate::serve::serve;

/// Runs a hostile mode; `None` if `mode` is not one.
pub(crate) async fn hostile(mode: &str) -> Option<ExitCode> {
    Some(match mode {
        "half-frame" => raw(RawMode::HalfFrame).await,
        "max-length" => raw(RawMode::MaxLength).await,
        "exit-in-hello" => raw(RawMode::ExitInHello).await,
        "answer-twice" => raw(RawMode::AnswerTwice).await,
        "stray-fds" => raw(RawMode::Fds(FdAbuse::Stray)).await,
        "wrong-kind-fds" => raw(RawMode::Fds(FdAbuse::WrongKind)).await,
        "fd-bundle" => raw(RawMode::Fds(FdAbuse::Bundle)).await,
        "flood-stdout" => {
            let mib = crate::env_u64("TEST_FLOOD_MIB").unwrap_or(64);
            std::thread::spawn(move || flood(mib));
            serve().await
        }
        "stop-self" => {
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP myself");
            });
            serve().await
        }
        _ => return None,
    })
}

/// Writes `mib` MiB of `x` with no line break to stdout, then a line break
/// and [`FLOOD_DONE`].
fn flood(mib: u64) {
    let chunk = vec![b'x'; 1 << 20];
    let mut out = std::io::stdout().lock();
    for _ in 0..mib {
        if out.write_all(&chunk).is_err() {
            return;
        }
    }
    let _ = writeln!(out, "\n{FLOOD_DONE}");
    let _ = out.flush();
}
