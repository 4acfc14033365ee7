//! `[queue]` under `nanny run`: the supervisor joins a shared queue on a
//! real `redis-server` (started by the test on a Unix socket), the URL given
//! through `url_env`, and `/metrics` and `/v1/status` say so.

use crate::metrics::exposition;
use crate::support::*;

#[path = "../../../tests/scaleout/redis_server.rs"]
mod redis_server;

#[test]
fn nanny_run_joins_the_shared_queue_and_reports_it() {
    let redis = redis_server::RedisServer::start();
    let text = format!(
        r#"
[[pool]]
name = "echo"
command = "{}"
workers = 1

[queue]
url_env = "TEST_REDIS_URL"
namespace = "cli"
host = "cli-host"
heartbeat = "100ms"
min_idle = "1s"
block = "100ms"
"#,
        test_worker().display()
    );
    let file = config("queue", &text);
    let nanny = Nanny::start_with_env(&["run"], &file, &[("TEST_REDIS_URL", &redis.url())]);
    let api = Api::of(&file);
    let families = within(
        || {
            let (status, _, body) = api.text("/metrics", Some(&api.token.clone()));
            assert_eq!(status, 200, "{body}");
            let families = exposition::parse(&body);
            let up = families["nanny_shared_queue_connected"].value("nanny_shared_queue_connected", &[]);
            (up == Some(1.0)).then_some(families)
        },
        "nanny_shared_queue_connected 1",
    );
    let ops = &families["nanny_shared_queue_operations"];
    assert_eq!(ops.kind, "counter");
    assert_eq!(ops.samples.len(), 12, "one sample per operation");
    assert_eq!(
        ops.value("nanny_shared_queue_operations_total", &[("operation", "error")]),
        Some(0.0)
    );
    let (_, status) = api.get("/v1/status");
    assert_eq!(status["queue"]["connected"], true, "{status}");
    assert!(!nanny.stderr().contains(&redis.url()), "the URL is never logged");
    nanny.signal("TERM");
    let (exit, stderr) = nanny.wait();
    assert!(exit.success(), "{exit:?}\n{stderr}");
}
