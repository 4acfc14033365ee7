//! `nanny run` end to end: the built binary on real files, with real
//! worker processes and real signals.

use std::path::Path;

use crate::support::*;

const SLEEPERS: &str = r#"
[supervisor]
force_stop_delay = "10s"

[[pool]]
name = "sleepers"
command = "sh"
args = ["-c", "echo up as $NANNY_WORKER_NAME; exec sleep 1000"]
plain = true
workers = 2

[[listener]]
tcp = "127.0.0.1:0"
pool = "sleepers"
socket_activation = true
"#;

#[test]
fn runs_the_pools_until_sigterm_then_exits_0_with_no_worker_left() {
    let file = config("sigterm", SLEEPERS);
    let nanny = Nanny::start(&["--log-format", "json", "run"], &file);
    let workers = two_sleepers_running(&nanny);
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "graceful stop: {stderr}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived nanny");
    }
    // Captured worker output, as JSON lines with the worker's pool.
    let line = stderr
        .lines()
        .find(|l| l.contains("up as sleepers:01"))
        .unwrap_or_else(|| panic!("the worker's line is logged: {stderr}"));
    assert!(
        line.starts_with('{') && line.contains(r#""target":"nanny::worker""#),
        "{line}"
    );
    assert!(line.contains(r#""pool":"sleepers""#), "{line}");
}

#[test]
fn a_bad_file_exits_78_with_its_place_and_starts_nothing() {
    let file = config("unknown-key", "[[pool]]\ncommand = \"sleep\"\nplian = true\n");
    let (status, stderr) = Nanny::start(&["run"], &file).wait();
    assert_eq!(status.code(), Some(78), "{stderr}");
    let want = format!("nanny: {}:3:1: unknown field `plian`", file.display());
    assert!(stderr.starts_with(&want), "{stderr}");

    let file = config(
        "zero",
        "[[pool]]\nname = \"p\"\ncommand = \"sleep\"\nargs = [\"1000\"]\nworkers = 0\n",
    );
    let (status, stderr) = Nanny::start(&["run"], &file).wait();
    assert_eq!(status.code(), Some(78), "{stderr}");
    let want = format!("nanny: {}:1:1: pool \"p\" has zero workers", file.display());
    assert!(stderr.starts_with(&want), "{stderr}");

    let (status, stderr) = Nanny::start(&["run"], Path::new("/nonexistent/nanny.toml")).wait();
    assert_eq!(status.code(), Some(78), "{stderr}");
    assert!(
        stderr.starts_with("nanny: /nonexistent/nanny.toml: cannot read: "),
        "{stderr}"
    );
}

#[test]
fn a_pool_that_cannot_get_ready_exits_69() {
    // Every start fails at once; with respawn_count 0 the slot is parked at
    // the first failure and the pool cannot get ready.
    let text = "[[pool]]\nname = \"broken\"\ncommand = \"false\"\nplain = true\nworkers = 1\nrespawn_count = 0\nreadiness = { delay = \"1s\" }\n";
    let file = config("unavailable", text);
    let (status, stderr) = Nanny::start(&["run"], &file).wait();
    assert_eq!(status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains(&format!("nanny: {}: cannot start: ", file.display())),
        "{stderr}"
    );
}

#[test]
fn a_second_sigterm_hard_kills_and_exits_128_plus_15() {
    // The workers ignore SIGTERM (an ignored disposition survives exec), so
    // the soft kill cannot finish before the second signal.
    let text = SLEEPERS.replace("echo up as $NANNY_WORKER_NAME;", "trap '' TERM;");
    let file = config("hard-kill", &text);
    let nanny = Nanny::start(&["run"], &file);
    let workers = two_sleepers_running(&nanny);
    nanny.signal("TERM");
    within(
        || nanny.stderr().contains("soft kill").then_some(()),
        "the soft kill to begin",
    );
    assert!(workers.iter().all(|&p| alive(p)), "the workers ignore SIGTERM");
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(128 + 15), "{stderr}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived nanny");
    }
}

/// Waits until `nanny` runs its two `sleep` workers and said every worker
/// is ready; returns their pids.
fn two_sleepers_running(nanny: &Nanny) -> Vec<u32> {
    let workers = within(
        || {
            let sleeping: Vec<u32> = children(nanny.pid())
                .into_iter()
                .filter(|(_, comm)| comm == "sleep")
                .map(|(p, _)| p)
                .collect();
            (sleeping.len() == 2).then_some(sleeping)
        },
        "two sleeping workers",
    );
    nanny.wait_ready();
    workers
}
