//! The CLI verbs (`nanny status`, `scale`, `stop`, `reload`, `logs`...)
//! against a running `nanny run` with real `sleep` workers, found as a user
//! finds it: from the config's directory, through `.nanny/api.json`. One
//! nanny shared by the checks that leave it in a known state. The exit
//! codes without a healthy nanny are in [`exits`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::support::*;

mod exits;

const WEB: &str = r#"
[[pool]]
name = "web"
command = "sh"
args = ["-c", "echo hello from $NANNY_WORKER_NAME; exec sleep 1000"]
plain = true
workers = 1
reload_delay = "10ms"
"#;

/// What a CLI run gave.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `nanny ARGS` in `dir`, with `env` set and no API variables inherited.
fn cli_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_nanny"))
        .args(args)
        .current_dir(dir)
        .env_remove("NANNY_API_URL")
        .env_remove("NANNY_API_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("run nanny");
    Out {
        code: out.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `nanny ARGS` in `dir`.
fn cli(dir: &Path, args: &[&str]) -> Out {
    cli_env(dir, args, &[])
}

/// `nanny ARGS` in `dir`, which must succeed; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert_eq!(out.code, 0, "nanny {args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

/// The slots of pool `web` from `nanny status --json`: (name, pid, stopped).
fn slots(dir: &Path) -> Vec<(String, Option<u64>, bool)> {
    pool_slots(dir, "web")
}

/// The slots of `pool` from `nanny status --json`: (name, pid, stopped).
fn pool_slots(dir: &Path, pool: &str) -> Vec<(String, Option<u64>, bool)> {
    let status: Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    let found = (status["pools"].as_array().unwrap().iter())
        .find(|p| p["name"] == pool)
        .unwrap()
        .clone();
    (found["slots"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["pid"].as_u64(),
                s["stopped"] == true,
            )
        })
        .collect()
}

/// The pid of slot `name`, once it has one.
fn pid(dir: &Path, name: &str) -> u64 {
    within(
        || slots(dir).into_iter().find(|s| s.0 == name).and_then(|s| s.1),
        &format!("{name} to have a pid"),
    )
}

#[test]
fn the_verbs_drive_a_running_nanny() {
    let file = config("verbs", WEB);
    let dir = file.parent().unwrap();
    let nanny = Nanny::start(&["run"], &file);
    discovery(&file);
    let first = pid(dir, "web:01");

    let table = ok(dir, &["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("web:01"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(&first.to_string()) && row.contains("ready"),
        "{table}"
    );
    assert!(table.lines().next().unwrap().starts_with("name"), "{table}");

    assert_eq!(ok(dir, &["scale", "web", "2"]), "scaled web to 2 workers\n");
    let second = pid(dir, "web:02");
    assert_eq!(slots(dir).len(), 2);
    let huge = cli(dir, &["scale", "web", "100000"]);
    assert_eq!(huge.code, 1, "{}", huge.stderr);
    assert!(huge.stderr.contains("maximum of 4096"), "{}", huge.stderr);
    assert_eq!(slots(dir).len(), 2);

    assert_eq!(ok(dir, &["stop", "web:02"]), "stopped web:02\n");
    assert!(slots(dir).iter().any(|s| s.0 == "web:02" && s.2 && s.1.is_none()));
    assert!(ok(dir, &["status"])
        .lines()
        .any(|l| l.starts_with("web:02") && l.contains("stopped")));
    assert_eq!(ok(dir, &["start", "web:02"]), "started web:02\n");
    assert_ne!(pid(dir, "web:02"), second);

    assert_eq!(ok(dir, &["restart", "web:01"]), "restarted web:01\n");
    let restarted = pid(dir, "web:01");
    assert_ne!(restarted, first);

    reload_shows_each_worker_replaced(dir);

    let logs = within(
        || Some(ok(dir, &["logs", "web:01"])).filter(|l| l.contains("web:01| hello from web:01")),
        "web:01's line in nanny logs",
    );
    assert!(!logs.contains("web:02|"), "{logs}");

    let conflict = cli(dir, &["start", "web:01"]);
    assert_eq!(conflict.code, 1, "{}", conflict.stderr);
    assert!(conflict.stderr.contains("running"), "{}", conflict.stderr);
    follow_shows_new_lines(dir);
    elsewhere_the_flags_find_it(&file);

    let unknown = cli(dir, &["stop", "web:09"]);
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("web:09"), "{}", unknown.stderr);
    let refused = cli_env(dir, &["status"], &[("NANNY_API_TOKEN", "not-the-token")]);
    assert_eq!(refused.code, 77, "{}", refused.stderr);
    assert!(refused.stderr.contains("refused the token"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("not-the-token"), "{}", refused.stderr);

    assert_eq!(ok(dir, &["stop-all"]), "stopped web:01\nstopped web:02\n");
    assert!(slots(dir).iter().all(|s| s.2));
    assert!(ok(dir, &["shutdown"]).contains("is stopping"));
    let (status, stderr) = nanny.wait();
    assert!(status.success(), "{stderr}");
}

/// `nanny reload web` prints a line per worker replaced, with both pids.
fn reload_shows_each_worker_replaced(dir: &Path) {
    let before: Vec<u64> = ["web:01", "web:02"].map(|n| pid(dir, n)).to_vec();
    let reload = ok(dir, &["reload", "web"]);
    assert!(
        reload.contains(&format!("reloaded web:01 (pid {} → ", before[0])),
        "{reload}"
    );
    assert!(
        reload.contains(&format!("reloaded web:02 (pid {} → ", before[1])),
        "{reload}"
    );
    assert!(reload.contains("[1/2]") && reload.contains("[2/2]"), "{reload}");
    assert!(reload.ends_with("reloaded web (2 workers)\n"), "{reload}");
    let after: Vec<u64> = ["web:01", "web:02"].map(|n| pid(dir, n)).to_vec();
    assert!(
        after[0] != before[0] && after[1] != before[1],
        "{before:?} {after:?}"
    );
}

/// `nanny logs -f web:01` prints the line of a replacement started after it,
/// and exits (0) once its reader has gone (`nanny logs -f | head -1`).
fn follow_shows_new_lines(dir: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanny"))
        .args(["logs", "--follow", "--lines", "0", "web:01"])
        .current_dir(dir)
        .env_remove("NANNY_API_URL")
        .env_remove("NANNY_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    // Reads one line, then closes the pipe.
    let reader = std::thread::spawn(move || {
        if let Some(Ok(line)) = BufReader::new(stdout).lines().next() {
            let _ = tx.send(line);
        }
    });
    // Restarted until the follower is subscribed and sees the new line.
    let line = within(
        || {
            ok(dir, &["restart", "web:01"]);
            rx.recv_timeout(std::time::Duration::from_millis(500)).ok()
        },
        "a followed line",
    );
    assert_eq!(line, "web:01| hello from web:01");
    reader.join().unwrap();
    // The next line meets the closed pipe.
    let status = within(
        || {
            ok(dir, &["restart", "web:01"]);
            child.try_wait().unwrap()
        },
        "the follower to exit after its reader went",
    );
    assert_eq!(status.code(), Some(0));
}

/// From another directory: `-c FILE`, `--state-dir DIR`, and `--api` with
/// `--token-file`.
fn elsewhere_the_flags_find_it(file: &Path) {
    let away = std::env::temp_dir();
    let dir = file.parent().unwrap();
    let state = dir.join(".nanny");
    let found = discovery(file);
    let token_file = found["token_file"].as_str().unwrap();
    for args in [
        vec!["-c", file.to_str().unwrap(), "status"],
        vec!["status", "--state-dir", state.to_str().unwrap()],
        vec![
            "--api",
            found["url"].as_str().unwrap(),
            "--token-file",
            token_file,
            "status",
        ],
    ] {
        let out = cli(&away, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("web:01"), "{args:?}: {}", out.stdout);
    }
}

const WEB_AND_JOBS: &str = r#"
[[pool]]
name = "web"
command = "sleep"
args = ["1000"]
plain = true
workers = 2
reload_delay = "10ms"

[[pool]]
name = "jobs"
command = "sleep"
args = ["1000"]
plain = true
workers = 1
reload_delay = "10ms"
"#;

#[test]
fn add_remove_reset_pool_selectors_reload_all_and_hard_shutdown() {
    let file = config("verbs-slots", WEB_AND_JOBS);
    let dir = file.parent().unwrap();
    let nanny = Nanny::start(&["run"], &file);
    discovery(&file);
    let jobs = within(
        || pool_slots(dir, "jobs").first().and_then(|s| s.1),
        "jobs:01 to have a pid",
    );
    pid(dir, "web:02");

    // The CPU column is read (`GET /v1/workers`), not left blank.
    let table = ok(dir, &["status"]);
    let row: Vec<&str> = (table.lines())
        .find(|l| l.starts_with("jobs:01"))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    assert!(row[9].ends_with('s') && row[9].contains('.'), "cpu: {table}");
    assert!(!table.contains("failed"), "{table}");

    add_then_remove(dir);
    let jobs = pool_selectors_take_the_slots_they_apply_to(dir, jobs);

    // Reload without a pool: every pool, counted across them.
    let reload = ok(dir, &["reload"]);
    assert!(
        reload.contains(&format!("reloaded jobs:01 (pid {jobs} → ")),
        "{reload}"
    );
    assert!(reload.contains("[3/3]"), "{reload}");
    assert!(reload.ends_with("reloaded web, jobs (3 workers)\n"), "{reload}");

    let unknown = cli(dir, &["scale", "nope", "2"]);
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);

    let workers: Vec<u64> = ["web:01", "web:02"]
        .map(|n| pid(dir, n))
        .into_iter()
        .chain(pool_slots(dir, "jobs")[0].1)
        .collect();
    assert_eq!(workers.len(), 3, "{workers:?}");
    assert!(ok(dir, &["shutdown", "--hard"]).contains("killing its workers"));
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        workers.iter().all(|w| !alive(*w as u32)),
        "a worker outlived nanny"
    );
}

/// `nanny add web` then `nanny remove` of the new slot: the pool is back to
/// two, the removed process gone.
fn add_then_remove(dir: &Path) {
    assert_eq!(ok(dir, &["add", "web"]), "added web:03\n");
    let added = pid(dir, "web:03");
    assert_eq!(ok(dir, &["remove", "web:03"]), "removed web:03\n");
    assert_eq!(slots(dir).len(), 2);
    within(
        || (!alive(added as u32)).then_some(()),
        "the removed worker to exit",
    );
}

/// `stop`, `reset`, `start` and `restart` over a pool or `all` act on the
/// slots they apply to (running ones, stopped ones for `start`); `reset` of
/// one stopped worker is a conflict. The new pid of `jobs:01`.
fn pool_selectors_take_the_slots_they_apply_to(dir: &Path, jobs: u64) -> u64 {
    assert_eq!(ok(dir, &["stop", "jobs"]), "stopped jobs:01\n");
    assert_eq!(ok(dir, &["reset", "web:01"]), "reset web:01\n");
    let stopped = cli(dir, &["reset", "jobs:01"]);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("stopped"), "{}", stopped.stderr);
    assert_eq!(ok(dir, &["reset", "jobs"]), "nothing to reset in jobs\n");
    assert_eq!(ok(dir, &["start", "all"]), "started jobs:01\n");
    let jobs = within(
        || pool_slots(dir, "jobs")[0].1.filter(|p| *p != jobs),
        "a new jobs:01",
    );
    let before = ["web:01", "web:02"].map(|n| pid(dir, n));
    assert_eq!(
        ok(dir, &["restart", "web"]),
        "restarted web:01\nrestarted web:02\n"
    );
    let after = ["web:01", "web:02"].map(|n| pid(dir, n));
    assert!(
        after[0] != before[0] && after[1] != before[1],
        "{before:?} {after:?}"
    );
    jobs
}
