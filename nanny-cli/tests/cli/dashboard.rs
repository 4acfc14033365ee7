//! The dashboard: its open shell and assets under a strict CSP, the
//! authenticated `/v1/live` stream, and the page itself in Chromium
//! (`tests/browser/check.mjs`), against a running `nanny run`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Two small pools: three sleepers, and two shells whose memory grows a
/// little each quarter second (so the RSS charts have a slope).
const TWO_POOLS: &str = r#"
[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 1000"]
plain = true
workers = 3
restart = "always"

[[pool]]
name = "jobs"
command = "sh"
args = ["-c", "x=; i=0; while [ $i -lt 200 ]; do x=\"$x$(printf %0100000d 0)\"; i=$((i+1)); sleep 0.25; done; exec sleep 1000"]
plain = true
workers = 2
"#;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[test]
fn the_page_is_live_in_a_real_browser() {
    let dir = browser_dir();
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium), or apt-get install chromium"
    );
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: run scripts/test (it runs npm ci there)",
        dir.display()
    );
    let file = config("dashboard-browser", TWO_POOLS);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    within(|| (live_workers(&api) == 5).then_some(()), "five workers");
    let shot = file.parent().unwrap().join("dashboard.png");
    let out = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(format!("{}/", api.url))
        .arg(&api.token)
        .arg(&shot)
        .current_dir(&dir)
        .output()
        .expect("node (run scripts/test, or install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser check failed ({}):\n{stdout}\n{}\nnanny's log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        nanny.stderr()
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("check.mjs's summary");
    let mut workers: Vec<&str> = (summary["workers"].as_array().unwrap().iter())
        .map(|w| w.as_str().unwrap())
        .collect();
    workers.sort_unstable();
    assert_eq!(
        workers,
        ["jobs:01", "jobs:02", "web:01", "web:02", "web:03"],
        "{summary}"
    );
    assert_eq!(summary["pools"], serde_json::json!(["web", "jobs"]));
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    // The worker the page saw killed was restarted: nanny agrees.
    let (_, status) = api.get("/v1/status");
    assert!(status["stats"]["restarts"].as_u64().unwrap() >= 1, "{status}");
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

/// Workers `inspect()` reports.
fn live_workers(api: &Api) -> usize {
    let (_, status) = api.get("/v1/status");
    status["workers"].as_array().map_or(0, Vec::len)
}

#[test]
fn the_shell_is_open_data_free_and_under_a_strict_policy() {
    let file = config("dashboard-shell", TWO_POOLS);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let mut r = ureq::get(&format!("{}{path}", api.url)).call().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| r.headers().get(name).unwrap().to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        for rule in ["default-src 'none'", "script-src 'self'", "connect-src 'self'"] {
            assert!(csp.contains(rule), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let body = r.body_mut().read_to_string().unwrap();
        // No data: neither a worker's name nor the token is in the shell.
        assert!(!body.contains("web:01") && !body.contains(&api.token), "{path}");
        if path == "/" {
            assert!(
                !body.contains("<script>") && !body.contains("style="),
                "inline code in the shell"
            );
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "an external resource"
            );
        }
    }
    assert_eq!(api.call("GET", "/assets/nope.js", None, None).0, 404);
    assert_eq!(api.call("GET", "/v1/live", None, None).0, 401);
    assert_eq!(api.call("GET", "/v1/live", Some("wrong"), None).0, 401);
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn live_sends_snapshots_and_ends_when_nanny_stops() {
    let file = config("dashboard-live", TWO_POOLS);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let response = agent
        .get(&format!("{}/v1/live", api.url))
        .header("Authorization", &format!("Bearer {}", api.token))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let mut snapshot = || -> serde_json::Value {
        let event = lines.next().unwrap().unwrap();
        assert_eq!(event, "event: snapshot");
        let data = lines.next().unwrap().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "", "one data line per event");
        serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap()
    };
    let first = snapshot();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["pools"][0]["name"], "web");
    assert_eq!(first["pools"][0]["target"], 3);
    assert_eq!(first["pools"][1]["name"], "jobs");
    for key in ["answered", "queued", "in_flight", "restarts"] {
        assert!(first["totals"][key].is_u64(), "totals.{key}: {first}");
    }
    assert!(first["requests_per_second"].is_number());
    let second = snapshot();
    assert_eq!(second["seq"], 1);
    let worker = &second["workers"][0];
    for key in ["pid", "rss_bytes", "restarts", "in_flight", "served"] {
        assert!(worker[key].is_u64(), "{key}: {worker}");
    }
    assert!(
        worker["name"].is_string() && worker["pool"].is_string(),
        "{worker}"
    );
    assert!(
        worker["state"].is_string() && worker["uptime_secs"].is_number(),
        "{worker}"
    );
    // Stopping nanny ends the stream (rather than waiting for it).
    nanny.signal("TERM");
    for line in lines {
        if let Err(e) = line {
            panic!("the stream did not end when nanny stopped: {e}");
        }
    }
    assert_eq!(nanny.wait().0.code(), Some(0));
}
