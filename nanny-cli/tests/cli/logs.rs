//! Workers' output under `nanny run`: silent pools' rotating log files with
//! a total cap, their encoding, the stderr prefix of the others, and the
//! live log of `GET /v1/logs`.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::support::*;

/// `(name, size)` of the files in `dir`, sorted.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().into_string().unwrap(), e.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}

fn stop(nanny: Nanny) {
    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_flood_rotates_the_log_files_within_their_size_and_total() {
    // About 4.6 MB in 40 000 lines, then a last line once the flood is read.
    let file = config(
        "logs-flood",
        r#"
[supervisor]
log_max_size = "64KiB"
log_max_total = "256KiB"

[[pool]]
name = "flood"
command = "sh"
args = ["-c", "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 40000; sleep 1; echo LAST-LINE; exec sleep 1000"]
plain = true
silent = true
workers = 1
"#,
    );
    let nanny = Nanny::start(&["run"], &file);
    let dir = file.parent().unwrap().join("logs");
    let current = dir.join("flood.log");
    within(
        || {
            let text = std::fs::read_to_string(&current).ok()?;
            text.contains("LAST-LINE").then_some(())
        },
        "the last line in flood.log",
    );
    stop(nanny);
    let found = files(&dir);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.len() >= 3, "rotated files: {names:?}");
    assert_eq!(names[0], "flood.log");
    for (i, name) in names.iter().enumerate().skip(1) {
        assert_eq!(*name, format!("flood.log.{i}"), "{names:?}");
    }
    let one_line = 200; // a line of the flood, with its time, worker and stream
    for (name, size) in &found {
        assert!(*size <= 64 * 1024 + one_line, "{name}: {size} bytes");
    }
    let total: u64 = found.iter().map(|(_, s)| s).sum();
    assert!(total <= 256 * 1024, "{total} bytes in {found:?}");
    let text = std::fs::read_to_string(&current).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("flood:01 stdout: LAST-LINE"), "{last}");
}

#[test]
fn a_latin1_pool_is_decoded_into_its_own_log_dir() {
    let file = config(
        "logs-latin1",
        r#"
[[pool]]
name = "legacy"
command = "sh"
args = ["-c", "printf '\\351t\\351\\n'; exec sleep 1000"]
plain = true
silent = true
workers = 1
encoding = "latin1"
log_dir = "custom"
"#,
    );
    let nanny = Nanny::start(&["run"], &file);
    let log = file.parent().unwrap().join("custom/legacy.log");
    let text = within(
        || std::fs::read_to_string(&log).ok().filter(|t| t.contains('\n')),
        "a line in custom/legacy.log",
    );
    assert!(text.contains("legacy:01 stdout: été\n"), "{text:?}");
    // A silent pool's lines are not on nanny's stderr.
    assert!(!nanny.stderr().contains("été"), "{}", nanny.stderr());
    stop(nanny);
}

const TALKER: &str = r#"
[[pool]]
name = "talk"
command = "sh"
args = ["-c", "echo hello-from-worker; echo warning-from-worker >&2; exec sleep 1000"]
plain = true
workers = 1
"#;

#[test]
fn a_pool_that_is_not_silent_logs_on_stderr_prefixed_with_its_worker() {
    let file = config("logs-prefix", TALKER);
    let nanny = Nanny::start(&["run"], &file);
    within(
        || {
            nanny
                .stderr()
                .contains("talk:01| warning-from-worker")
                .then_some(())
        },
        "the worker's stderr line",
    );
    let stderr = nanny.stderr();
    let line = stderr.lines().find(|l| l.contains("talk:01| hello-from-worker"));
    assert!(line.is_some_and(|l| l.contains("INFO")), "{stderr}");
    let warned = stderr
        .lines()
        .find(|l| l.contains("talk:01| warning-from-worker"));
    assert!(warned.is_some_and(|l| l.contains("WARN")), "{stderr}");
    assert!(
        !file.parent().unwrap().join("logs").exists(),
        "no log file for it"
    );
    stop(nanny);
}

#[test]
fn json_logs_carry_the_pool_and_worker_as_fields() {
    let file = config("logs-json", TALKER);
    let nanny = Nanny::start(&["--log-format", "json", "run"], &file);
    let event = within(
        || {
            nanny.stderr().lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["fields"]["message"] == "hello-from-worker").then_some(v)
            })
        },
        "the worker's line as JSON",
    );
    assert_eq!(event["fields"]["pool"], "talk");
    assert_eq!(event["fields"]["worker"], "talk:01");
    assert_eq!(event["fields"]["stream"], "stdout");
    assert_eq!(event["target"], "nanny::worker");
    stop(nanny);
}

/// `GET path` of `api` as a stream of NDJSON lines, read as they come.
fn ndjson(api: &Api, path: &str) -> (String, impl Iterator<Item = serde_json::Value>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let response = agent
        .get(format!("{}{path}", api.url))
        .header("Authorization", format!("Bearer {}", api.token))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    let reader = BufReader::new(response.into_body().into_reader());
    let lines = reader
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("an NDJSON line"));
    (kind, lines)
}

#[test]
fn v1_logs_sends_recent_lines_and_follows_new_ones() {
    let file = config(
        "logs-api",
        r#"
[[pool]]
name = "ticks"
command = "sh"
args = ["-c", "echo one; echo two; echo three; i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
plain = true
silent = true
workers = 2
"#,
    );
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    // Both workers' first ticks are in.
    within(
        || {
            let (_, lines) = ndjson(&api, "/v1/logs?lines=1000");
            let ticks = lines.filter(|v| v["line"] == "tick-0").count();
            (ticks == 2).then_some(())
        },
        "both workers' first tick",
    );
    let (kind, lines) = ndjson(&api, "/v1/logs?target=ticks:01&lines=1000");
    assert_eq!(kind, "application/x-ndjson");
    let lines: Vec<serde_json::Value> = lines.collect();
    let texts: Vec<&str> = lines.iter().map(|v| v["line"].as_str().unwrap()).collect();
    assert_eq!(texts[..4], ["one", "two", "three", "tick-0"], "{texts:?}");
    for v in &lines {
        assert_eq!(
            (&v["pool"], &v["worker"], &v["stream"]),
            (&"ticks".into(), &"ticks:01".into(), &"stdout".into())
        );
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    }
    // `lines` counts from the end; `all` and the pool take both workers.
    let (_, two) = ndjson(&api, "/v1/logs?target=ticks&lines=2");
    assert_eq!(two.count(), 2);
    let (_, all) = ndjson(&api, "/v1/logs?target=all&lines=1000");
    let workers: std::collections::BTreeSet<String> =
        all.map(|v| v["worker"].as_str().unwrap().to_owned()).collect();
    assert_eq!(workers.into_iter().collect::<Vec<_>>(), ["ticks:01", "ticks:02"]);
    // Following: a tick written after the request arrives.
    let (_, mut follow) = ndjson(&api, "/v1/logs?target=ticks:02&lines=1&follow=true");
    let number = |v: &serde_json::Value| {
        v["line"]
            .as_str()
            .and_then(|t| t.strip_prefix("tick-"))
            .map(|n| n.parse::<u64>().unwrap())
    };
    let last_seen = number(&follow.next().unwrap()).expect("a tick");
    let newer = follow.next().unwrap();
    assert_eq!(newer["worker"], "ticks:02");
    assert!(number(&newer).is_some_and(|n| n > last_seen), "{newer}");
    // Unknown selectors.
    let (status, body) = api.get("/v1/logs?target=nope");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_pool"))
    );
    let (status, body) = api.get("/v1/logs?target=ticks:09");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_worker"))
    );
    assert_eq!(api.call("GET", "/v1/logs", None, None).0, 401);
    // A follower does not hold the shutdown.
    drop(follow);
    let (_, follow) = ndjson(&api, "/v1/logs?follow=true&lines=0");
    stop(nanny);
    assert!(follow.count() < 1000, "the follow stream ended");
}

#[test]
fn a_follower_that_falls_behind_is_told_how_many_lines_it_missed() {
    // 20 000 lines of 1 000 bytes, once the test says go: about 21 MB of
    // NDJSON, more than the loopback socket buffers hold for a follower
    // that does not read.
    let file = config(
        "logs-lagged",
        r#"
[supervisor]
log_max_size = "1MiB"
log_max_total = "4MiB"

[[pool]]
name = "burst"
command = "sh"
args = ["-c", "while [ ! -e go ]; do sleep 0.05; done; yes $(printf '%01000d' 7) | head -n 20000; echo END"]
cwd = "."
plain = true
silent = true
workers = 1
"#,
    );
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    let (_, follow) = ndjson(&api, "/v1/logs?target=burst&lines=0&follow=true");
    std::fs::write(file.parent().unwrap().join("go"), "").unwrap();
    within(
        || {
            let (_, mut last) = ndjson(&api, "/v1/logs?target=burst&lines=1");
            (last.next()?["line"] == "END").then_some(())
        },
        "the burst to be captured",
    );
    let mut lagged = 0;
    for v in follow {
        if let Some(n) = v["lagged"].as_u64() {
            lagged += n;
        }
        if v["line"] == "END" {
            break;
        }
    }
    assert!(lagged > 0, "the follower was told it lagged");
    stop(nanny);
}

#[test]
fn a_bad_encoding_label_is_a_config_error_at_its_place() {
    let file = config(
        "logs-bad-encoding",
        "[[pool]]\ncommand = \"sleep\"\nargs = [\"1000\"]\nplain = true\nencoding = \"utf-16le\"\n",
    );
    let (status, stderr) = Nanny::start(&["run"], &file).wait();
    assert_eq!(status.code(), Some(78), "{stderr}");
    let want = format!(
        "nanny: {}:5:12: encoding \"utf-16le\" (UTF-16LE) is not supported",
        file.display()
    );
    assert!(stderr.starts_with(&want), "{stderr}");
}

#[test]
fn a_full_disk_for_a_log_file_is_warned_once_and_nanny_serves_and_recovers() {
    let file = config(
        "logs-full",
        r#"
[[pool]]
name = "full"
command = "sh"
args = ["-c", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.005; done"]
plain = true
silent = true
workers = 1
"#,
    );
    let dir = file.parent().unwrap().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    let current = dir.join("full.log");
    std::os::unix::fs::symlink("/dev/full", &current).unwrap();
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    let warning = "cannot write the pool's log file";
    within(|| nanny.stderr().contains(warning).then_some(()), "the warning");
    // Hundreds of lines later: still one warning, and nanny serves, its
    // live log too.
    let last_line = || {
        let (status, _, body) = api.text("/v1/logs?target=full&lines=1", Some(&api.token));
        assert_eq!(status, 200, "{body}");
        let line: serde_json::Value = serde_json::from_str(body.lines().next()?).ok()?;
        line["line"].as_str()?.strip_prefix("line ")?.parse::<u64>().ok()
    };
    within(|| last_line().filter(|&n| n > 300), "300 lines captured");
    assert_eq!(api.get("/v1/status").0, 200);
    let stderr = nanny.stderr();
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // Room again (the path a writable file): the next lines go there, after
    // the count of those lost.
    std::fs::remove_file(&current).unwrap();
    let text = within(
        || {
            let text = std::fs::read_to_string(&current).ok()?;
            text.lines().nth(1).is_some().then_some(text)
        },
        "lines in the file again",
    );
    let first = text.lines().next().unwrap();
    let lost: u64 = (first.strip_prefix("nanny: "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("not a note of the lines lost: {first}"));
    assert!(lost > 300, "{first}");
    assert!(
        first.contains("lines lost: the file could not be written"),
        "{first}"
    );
    assert!(
        text.lines().nth(1).unwrap().contains("full:01 stdout: line "),
        "{text}"
    );
    // The writer logs its recovery after the write that succeeded, and the
    // test reads nanny's stderr through a pipe: wait for the line.
    let recovered = "can be written again";
    within(
        || nanny.stderr().contains(recovered).then_some(()),
        "the recovery",
    );
    let stderr = nanny.stderr();
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    stop(nanny);
}
