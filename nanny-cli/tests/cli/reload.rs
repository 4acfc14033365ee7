//! SIGHUP under `nanny run` re-reads the file: changed pools roll to their
//! new spec or size, the others keep their workers, a bad file changes
//! nothing, a pool's lines move to its new log settings; and a pool's user
//! and rlimits reach its workers.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

/// Two pools of `sleep`s; each worker's argument names its pool and
/// version, so `/proc/PID/cmdline` tells them apart.
fn two_pools(web_version: u32, jobs_workers: usize, extra: &str) -> String {
    format!(
        r#"
[supervisor]
reload_delay = "10ms"
force_stop_delay = "10s"

[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 100{web_version}"]
plain = true
workers = 2

[[pool]]
name = "jobs"
command = "sh"
args = ["-c", "exec sleep 2000"]
plain = true
workers = {jobs_workers}
{extra}"#
    )
}

/// Writes `text` as the file again, with the `[api]` table `config` added.
fn rewrite(file: &Path, text: &str) {
    std::fs::write(file, format!("{text}\n[api]\nlisten = \"127.0.0.1:0\"\n")).unwrap();
}

/// The `sleep` workers of `nanny`, by the argument they run with.
fn sleepers(nanny: &Nanny, arg: &str) -> BTreeSet<u32> {
    (children(nanny.pid()).into_iter())
        .filter(|(pid, comm)| comm == "sleep" && cmdline(*pid) == ["sleep", arg])
        .map(|(pid, _)| pid)
        .collect()
}

fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    (raw.split(|&b| b == 0))
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Waits until `arg`'s sleepers are exactly `n`; returns them.
fn exactly(nanny: &Nanny, arg: &str, n: usize) -> BTreeSet<u32> {
    within(
        || Some(sleepers(nanny, arg)).filter(|s| s.len() == n),
        &format!("{n} workers running sleep {arg}"),
    )
}

/// Sends SIGHUP, then waits for the `nth` log line holding `what`.
fn hup_until(nanny: &Nanny, nth: usize, what: &str) -> String {
    nanny.signal("HUP");
    within(
        || (nanny.stderr().matches(what).count() >= nth).then(|| nanny.stderr()),
        what,
    )
}

#[test]
fn sighup_rolls_the_changed_pool_keeps_the_other_and_survives_a_bad_file() {
    let file = config("reload", &two_pools(1, 2, ""));
    let nanny = Nanny::start(&["run"], &file);
    let web = exactly(&nanny, "1001", 2);
    let jobs = exactly(&nanny, "2000", 2);
    nanny.wait_ready();

    // web's args change: its workers are replaced, jobs' are not.
    rewrite(&file, &two_pools(2, 2, ""));
    let log = hup_until(&nanny, 1, "reloaded nanny.toml");
    assert!(
        log.contains("reloaded nanny.toml: pools web changed; jobs unchanged"),
        "{log}"
    );
    let web2 = exactly(&nanny, "1002", 2);
    assert!(web2.is_disjoint(&web), "new pids: {web:?} → {web2:?}");
    assert!(
        sleepers(&nanny, "1001").is_empty(),
        "the old web workers are gone"
    );
    assert_eq!(sleepers(&nanny, "2000"), jobs, "jobs keeps its workers");

    // An unknown key: refused with its place, nothing changes.
    rewrite(&file, &two_pools(3, 2, "plian = true\n"));
    let log = hup_until(&nanny, 1, "reload refused");
    let place = format!("{}:19:1: unknown field `plian`", file.display());
    assert!(log.contains(&place), "{log}");
    assert_eq!(sleepers(&nanny, "1002"), web2);
    assert_eq!(sleepers(&nanny, "2000"), jobs);

    // A good file again: jobs grows (its two keep running), a new pool
    // is only warned about.
    let extra = "\n[[pool]]\nname = \"extra\"\ncommand = \"sleep\"\nargs = [\"3000\"]\nplain = true\n";
    rewrite(&file, &two_pools(2, 3, extra));
    let log = hup_until(&nanny, 2, "reloaded nanny.toml");
    assert!(
        log.contains(r#"[[pool]] "extra" added: needs a restart of nanny"#),
        "{log}"
    );
    assert!(log.contains("pools jobs changed; web unchanged"), "{log}");
    let jobs3 = exactly(&nanny, "2000", 3);
    assert!(jobs3.is_superset(&jobs), "{jobs:?} ⊄ {jobs3:?}");
    assert_eq!(sleepers(&nanny, "1002"), web2, "web keeps its workers");
    assert!(sleepers(&nanny, "3000").is_empty(), "no pool was added");

    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_pools_user_and_rlimits_reach_its_workers() {
    let (uid, gid) = passwd_ids("nobody");
    let text = "[[pool]]\nname = \"jobs\"\ncommand = \"sh\"\nargs = [\"-c\", \"exec sleep 4000\"]\n\
                plain = true\nworkers = 1\nuser = \"nobody\"\nrlimits = { nofile = 256, core = { soft = 0, hard = \"unlimited\" } }\n";
    let file = config("run-as", text);
    let nanny = Nanny::start(&["run"], &file);
    let pid = *exactly(&nanny, "4000", 1).first().unwrap();
    nanny.wait_ready();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("Uid:"), vec![uid; 4], "{status}");
    assert_eq!(ids("Gid:"), vec![gid; 4], "{status}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let words: Vec<&str> = line[name.len()..].split_whitespace().collect();
        (words[0].to_owned(), words[1].to_owned())
    };
    assert_eq!(limit("Max open files"), ("256".into(), "256".into()), "{limits}");
    assert_eq!(
        limit("Max core file size"),
        ("0".into(), "unlimited".into()),
        "{limits}"
    );
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// `user`'s uid and primary gid, from `/etc/passwd`.
fn passwd_ids(user: &str) -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = (passwd.lines())
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("{user} in /etc/passwd"));
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].to_owned(), fields[3].to_owned())
}

#[test]
fn sighup_rolls_a_pool_whose_settings_changed() {
    let file = config("reload-settings", &two_pools(1, 2, ""));
    let nanny = Nanny::start(&["run"], &file);
    let web = exactly(&nanny, "1001", 2);
    let jobs = exactly(&nanny, "2000", 2);
    nanny.wait_ready();
    let api = Api::of(&file);
    let (code, info) = api.get("/v1/pools/jobs");
    assert_eq!(
        (code, &info["restart"]),
        (200, &serde_json::json!("always")),
        "{info}"
    );

    // Only jobs' settings change (no spec, no size): it rolls to them.
    let extra = "restart = \"no\"\nmax_restarts = 2\nstart_timeout = \"20s\"\n";
    rewrite(&file, &two_pools(1, 2, extra));
    let log = hup_until(&nanny, 1, "reloaded nanny.toml");
    assert!(
        log.contains("reloaded nanny.toml: pools jobs changed; web unchanged"),
        "{log}"
    );
    assert!(!log.contains("needs a restart"), "{log}");
    let jobs2 = exactly(&nanny, "2000", 2);
    assert!(jobs2.is_disjoint(&jobs), "new pids: {jobs:?} → {jobs2:?}");
    assert_eq!(sleepers(&nanny, "1001"), web, "web keeps its workers");
    let (_, info) = api.get("/v1/pools/jobs");
    assert_eq!(info["restart"], serde_json::json!("no"), "{info}");

    // A log key and a setting: both apply.
    rewrite(
        &file,
        &two_pools(1, 2, "restart = \"on-failure\"\nsilent = true\n"),
    );
    let log = hup_until(&nanny, 2, "reloaded nanny.toml");
    assert!(!log.contains("needs a restart"), "{log}");
    let (_, info) = api.get("/v1/pools/jobs");
    assert_eq!(info["restart"], serde_json::json!("on-failure"), "{info}");

    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A pool of one worker that says `tick` every 20 ms, with `logs`.
fn ticker(logs: &str) -> String {
    format!(
        "[[pool]]\nname = \"talk\"\ncommand = \"sh\"\nargs = [\"-c\", \"while :; do echo tick; sleep 0.02; done\"]\nplain = true\nworkers = 1\n{logs}"
    )
}

/// The ticks in `file`, none if it is not there.
fn ticks(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |t| t.matches("talk:01 stdout: tick").count())
}

#[test]
fn sighup_moves_a_pools_lines_without_restarting_its_workers() {
    let file = config("reload-logs", &ticker(""));
    let dir = file.parent().unwrap().to_owned();
    let nanny = Nanny::start(&["run"], &file);
    within(
        || nanny.stderr().contains("talk:01| tick").then_some(()),
        "ticks on nanny's stderr",
    );
    let worker = exactly_one_shell(&nanny);

    let steps = [
        ("silent = true\nlog_dir = \"a\"\n", Some("a")),
        (
            "silent = true\nlog_dir = \"b\"\nlog_max_size = \"1MiB\"\n",
            Some("b"),
        ),
        ("", None),
    ];
    for (n, (logs, place)) in steps.into_iter().enumerate() {
        rewrite(&file, &ticker(logs));
        let log = hup_until(&nanny, n + 1, "reloaded nanny.toml");
        assert!(log.contains("reloaded nanny.toml: pools talk changed"), "{log}");
        assert!(!log.contains("needs a restart"), "{log}");
        match place {
            Some(sub) => {
                let path = dir.join(sub).join("talk.log");
                within(
                    || (ticks(&path) >= 3).then_some(()),
                    &format!("ticks in {sub}/talk.log"),
                );
            }
            None => {
                let before = nanny.stderr().matches("talk:01| tick").count();
                within(
                    || (nanny.stderr().matches("talk:01| tick").count() >= before + 3).then_some(()),
                    "ticks on nanny's stderr again",
                );
            }
        }
    }
    assert_eq!(
        exactly_one_shell(&nanny),
        worker,
        "the worker was never restarted"
    );
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// The pid of the one `sh` worker of `nanny`.
fn exactly_one_shell(nanny: &Nanny) -> u32 {
    let shells: Vec<u32> = (children(nanny.pid()).into_iter())
        .filter(|(_, comm)| comm == "sh")
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(shells.len(), 1, "{shells:?}");
    shells[0]
}
