//! The table from a real `GET /v1/status` answer (`status.json`: pool
//! `web` with `web:01` running and `web:02` stopped, pool `jobs` with one
//! worker), some values changed to exercise the units.

use super::*;

/// The fixture as `nanny::Inspect`, after `edit`.
fn inspect(edit: impl FnOnce(&mut serde_json::Value)) -> Inspect {
    let mut v: serde_json::Value = serde_json::from_str(include_str!("status.json")).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

#[test]
fn rows_follow_the_slots_with_stopped_ones_shown() {
    let text = render(&inspect(|v| {
        let w = &mut v["workers"][0];
        w["uptime"] = serde_json::json!({"secs": 7300, "nanos": 0});
        w["rss_bytes"] = 25_690_112.into();
        w["cpu_time"] = serde_json::json!({"secs": 3, "nanos": 250_000_000});
        w["served"] = 1234.into();
        w["errors"] = 2.into();
        w["panics"] = 1.into();
    }));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let cells = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(cells(0)[..4], ["name", "id", "pool", "pid"]);
    let web01 = cells(1);
    assert_eq!(web01[0], "web:01");
    assert_eq!(web01[2], "web");
    assert_eq!(
        web01[4..],
        ["ready", "2h", "0", "24.5", "MiB", "3.2s", "0", "1234", "3/1"]
    );
    assert_eq!(
        cells(2),
        ["web:02", "-", "web", "-", "stopped", "-", "-", "-", "-", "-", "-", "-"]
    );
    assert_eq!(cells(3)[0], "jobs:01");
    assert_eq!(lines[4], "2 pools, 2 workers (2 running), 0 queued");
}

#[test]
fn columns_line_up() {
    let text = render(&inspect(|_| {}));
    let lines: Vec<&str> = text.lines().take(4).collect();
    // The state column starts at the same place on every line.
    let at = |l: &str, word: &str| l.find(word).unwrap();
    assert_eq!(at(lines[0], "state"), at(lines[1], "ready"));
    assert_eq!(at(lines[0], "state"), at(lines[2], "stopped"));
    // Numbers are right-aligned: a value ends where its header does.
    let end = at(lines[0], "restarts") + "restarts".len();
    assert_eq!(&lines[1][end - 2..=end], " 0 ", "{text}");
}

#[test]
fn units_read_well() {
    assert_eq!(duration(Duration::from_secs(59)), "59s");
    assert_eq!(duration(Duration::from_secs(61)), "1m");
    assert_eq!(duration(Duration::from_secs(3 * 86400)), "3d");
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(1536), "1.5 KiB");
    assert_eq!(bytes(3 << 30), "3.0 GiB");
    assert_eq!(cpu(Duration::from_millis(1250)), "1.2s");
}

#[test]
fn cpu_times_come_from_the_workers_answer_by_id() {
    let mut status: serde_json::Value = serde_json::from_str(include_str!("status.json")).unwrap();
    let web01 = status["workers"][0]["id"].clone();
    let cpu = serde_json::json!({"secs": 1, "nanos": 500_000_000});
    let health = serde_json::json!([
        {"id": 999, "cpu_time": {"secs": 9, "nanos": 0}},
        {"id": web01, "cpu_time": cpu},
    ]);
    add_cpu_times(&mut status, &health);
    assert_eq!(status["workers"][0]["cpu_time"], cpu);
    assert!(
        status["workers"][1]["cpu_time"].is_null(),
        "not in the answer: unchanged"
    );
    let text = render(&serde_json::from_value(status).unwrap());
    let web01 = text.lines().nth(1).unwrap().split_whitespace().nth(9);
    assert_eq!(web01, Some("1.5s"), "{text}");
}

#[test]
fn a_failed_pool_is_named_under_the_table() {
    let text = render(&inspect(|v| v["pools"][1]["failed"] = true.into()));
    assert_eq!(
        text.lines().last(),
        Some("2 pools, 2 workers (2 running), 0 queued; failed (restart budget spent): jobs"),
        "{text}"
    );
}
