//! `GET /metrics` against a running `nanny run`: behind the token, the
//! OpenMetrics text of every family README.md names, with figures that
//! follow what the test does (connections made, a worker killed).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use crate::support::*;

pub(crate) mod exposition;

/// Every family `/metrics` has (README.md, "The `nanny` command").
const FAMILIES: [&str; 13] = [
    "nanny_queue_depth",
    "nanny_in_flight",
    "nanny_requests",
    "nanny_request_latency_seconds",
    "nanny_restarts",
    "nanny_worker_rss_bytes",
    "nanny_worker_runtime_lag_seconds",
    "nanny_connections_balanced",
    "nanny_messages_relayed",
    "nanny_shared_queue_connected",
    "nanny_shared_queue_under_memory_pressure",
    "nanny_shared_queue_reclaim_idle_seconds",
    "nanny_shared_queue_operations",
];

/// One scrape with the right token: the families, and the content type.
fn scrape(api: &Api) -> (String, std::collections::BTreeMap<String, exposition::Family>) {
    let (status, content_type, body) = api.text("/metrics", Some(&api.token.clone()));
    assert_eq!(status, 200, "{body}");
    (content_type, exposition::parse(&body))
}

/// Makes one connection through the balancer and has one line echoed.
fn echo_once(port: u16) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(b"hi\n").unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert!(line.ends_with(" hi\n"), "{line:?}");
}

#[test]
fn metrics_need_the_token_and_report_every_family_with_live_figures() {
    let text = format!(
        r#"
[[pool]]
name = "echo"
command = "{}"
workers = 2
env = {{ TEST_MODE = "conn-echo" }}
restart_delay = "10ms"

[[listener]]
name = "web"
tcp = "127.0.0.1:0"
pool = "echo"
"#,
        test_worker().display()
    );
    let file = config("metrics", &text);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    assert_eq!(api.text("/metrics", None).0, 401);
    assert_eq!(api.text("/metrics", Some("wrong")).0, 401);

    let (_, status) = api.get("/v1/status");
    let addr = status["listeners"][0]["addr"]["tcp"]
        .as_str()
        .expect("a TCP listener");
    let port = addr.parse::<std::net::SocketAddr>().expect("an address").port();
    const CONNECTIONS: u64 = 5;
    for _ in 0..CONNECTIONS {
        echo_once(port);
    }

    let (content_type, families) = within(
        || {
            let (ct, f) = scrape(&api);
            let rss = &f["nanny_worker_rss_bytes"];
            let sampled = rss.samples.len() == 2 && rss.samples.iter().all(|s| s.value > 0.0);
            // Protocol workers: a lag from each one's heartbeat.
            let lag = &f["nanny_worker_runtime_lag_seconds"];
            let beating = lag.samples.len() == 2 && lag.samples.iter().all(|s| s.value >= 0.0);
            (sampled && beating).then_some((ct, f))
        },
        "an RSS sample > 0 and a runtime lag for both workers",
    );
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for name in FAMILIES {
        let f = families.get(name).unwrap_or_else(|| panic!("no family {name}"));
        assert!(!f.help.is_empty(), "{name} has no help");
    }
    let kind = |name: &str| families[name].kind.as_str();
    assert_eq!(
        FAMILIES.map(kind),
        [
            "gauge",
            "gauge",
            "counter",
            "histogram",
            "counter",
            "gauge",
            "gauge",
            "counter",
            "counter",
            "gauge",
            "gauge",
            "gauge",
            "counter"
        ]
    );
    let workers: Vec<_> = (families["nanny_worker_rss_bytes"].samples.iter())
        .map(|s| (s.labels["pool"].as_str(), s.labels["worker"].as_str()))
        .collect();
    assert_eq!(workers, [("echo", "echo:01"), ("echo", "echo:02")]);
    let balanced = &families["nanny_connections_balanced"];
    let made = balanced.value(
        "nanny_connections_balanced_total",
        &[("listener", "web"), ("pool", "echo")],
    );
    assert_eq!(made, Some(CONNECTIONS as f64));
    let queue = families["nanny_queue_depth"].value("nanny_queue_depth", &[("pool", "echo")]);
    assert_eq!(queue, Some(0.0));
    let signal = &[("pool", "echo"), ("reason", "signal")];
    let restarts = |f: &std::collections::BTreeMap<String, exposition::Family>| {
        f["nanny_restarts"]
            .value("nanny_restarts_total", signal)
            .expect("a signal series")
    };
    assert_eq!(restarts(&families), 0.0);

    let pid = status["workers"][0]["pid"].as_u64().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    within(
        || (restarts(&scrape(&api).1) == 1.0).then_some(()),
        "the restart counted as a signal",
    );

    nanny.signal("TERM");
    let (status, stderr) = nanny.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
