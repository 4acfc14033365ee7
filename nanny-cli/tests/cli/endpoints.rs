//! The REST API's `/v1` endpoints against a running `nanny run` with real
//! `sleep` workers: reads, the worker verbs over selectors, scale, add,
//! restart, reload, stop, typed errors and the event stream. One nanny per
//! test, shared by the checks of that test.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;

use serde_json::{json, Value};

use crate::support::*;

const TWO_POOLS: &str = r#"
[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 1000"]
plain = true
silent = true
workers = 1
reload_delay = "10ms"

[[pool]]
name = "other"
command = "sh"
args = ["-c", "exec sleep 1000"]
plain = true
silent = true
workers = 1
reload_delay = "10ms"
"#;

/// A pool's slots, from `GET /v1/pools/{pool}`.
fn slots(api: &Api, pool: &str) -> Vec<Value> {
    let (status, body) = api.get(&format!("/v1/pools/{pool}"));
    assert_eq!(status, 200, "{body}");
    body["slots"].as_array().unwrap().clone()
}

/// The pid of the worker in slot `name`, if it has one.
fn pid_of(api: &Api, name: &str) -> Option<u64> {
    let pool = name.split(':').next().unwrap();
    let slot = slots(api, pool).into_iter().find(|s| s["name"] == name)?;
    slot["pid"].as_u64()
}

/// `POST path` with the token and no body.
fn post(api: &Api, path: &str) -> (u16, Value) {
    post_raw(api, path, "")
}

/// `POST path` with the token and `body` as it is (not JSON, maybe).
fn post_raw(api: &Api, path: &str, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let mut response = (agent.post(format!("{}{path}", api.url)))
        .header("Authorization", format!("Bearer {}", api.token))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `{"done": names}`, as a verb answers.
fn done(names: &[&str]) -> (u16, Value) {
    (200, json!({ "done": names }))
}

/// Asserts an error answer: its status, code and (409) reason.
#[track_caller]
fn assert_error(answer: (u16, Value), status: u16, code: &str, reason: Option<&str>) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["error"]["reason"].as_str(), reason, "{body}");
}

#[test]
fn the_worker_verbs_scale_add_restart_and_reload_act_on_real_workers() {
    let file = config("endpoints-verbs", TWO_POOLS);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    within(|| pid_of(&api, "web:01"), "web:01 to run");

    // scale 1 → 3: the list has 3 live workers.
    let (status, pool) = post_raw(&api, "/v1/pools/web/scale", r#"{"workers": 3}"#);
    assert_eq!((status, pool["target"].as_u64()), (200, Some(3)), "{pool}");
    let (_, workers) = api.get("/v1/workers/web");
    let pids: Vec<u64> = (workers.as_array().unwrap().iter())
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{workers}");
    assert!(pids.iter().all(|&p| alive(p as u32)));

    stop_and_start(&api);
    restart_reset_remove_add(&api);
    pool_verbs_restart_and_reload(&api);
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

/// stop: listed stopped, its process gone, a second stop a conflict;
/// start: it runs again, and starting a running worker is a conflict.
fn stop_and_start(api: &Api) {
    let old = pid_of(api, "web:02").unwrap();
    assert_eq!(post(api, "/v1/workers/web:02/stop"), done(&["web:02"]));
    let slot = (slots(api, "web").into_iter())
        .find(|s| s["name"] == "web:02")
        .unwrap();
    assert_eq!(slot["stopped"], true, "{slot}");
    assert!(!alive(old as u32), "the stopped worker's process is gone");
    assert_eq!(api.get("/v1/workers/web:02"), (200, json!([])));
    assert_error(
        post(api, "/v1/workers/web:02/stop"),
        409,
        "conflict",
        Some("stopped"),
    );
    assert_error(
        post(api, "/v1/workers/web:02/reset"),
        409,
        "conflict",
        Some("stopped"),
    );

    assert_eq!(post(api, "/v1/workers/web:02/start"), done(&["web:02"]));
    assert!(pid_of(api, "web:02").is_some_and(|p| alive(p as u32)));
    assert_error(
        post(api, "/v1/workers/web:01/start"),
        409,
        "conflict",
        Some("running"),
    );
}

/// restart (by name, then by id): a new pid in the same slot, the old
/// process gone; reset; remove; add (the smallest free name).
fn restart_reset_remove_add(api: &Api) {
    let old = pid_of(api, "web:01").unwrap();
    assert_eq!(post(api, "/v1/workers/web:01/restart"), done(&["web:01"]));
    let new = pid_of(api, "web:01").unwrap();
    assert_ne!(new, old);
    assert!(!alive(old as u32));
    let (_, one) = api.get("/v1/workers/web:01");
    let id = one[0]["id"].as_u64().unwrap();
    assert_eq!(post(api, &format!("/v1/workers/{id}/restart")), done(&["web:01"]));
    assert_ne!(pid_of(api, "web:01"), Some(new));

    assert_eq!(post(api, "/v1/workers/web:01/reset"), done(&["web:01"]));
    assert_eq!(post(api, "/v1/workers/web:03/remove"), done(&["web:03"]));
    assert_eq!(slots(api, "web").len(), 2);
    assert_eq!(
        post(api, "/v1/pools/web/workers"),
        (200, json!({"worker": "web:03"}))
    );
    assert_eq!(slots(api, "web").len(), 3);
}

/// A verb over a pool takes the slots it applies to; a pool's restart and
/// a reload replace every worker.
fn pool_verbs_restart_and_reload(api: &Api) {
    assert_eq!(post(api, "/v1/workers/web:03/stop"), done(&["web:03"]));
    assert_eq!(post(api, "/v1/workers/web/start"), done(&["web:03"]));

    let other = pid_of(api, "other:01").unwrap();
    assert_eq!(post(api, "/v1/pools/other/restart"), done(&["other:01"]));
    assert_ne!(pid_of(api, "other:01"), Some(other));
    let names = ["web:01", "web:02", "web:03"];
    let before: Vec<Option<u64>> = names.iter().map(|n| pid_of(api, n)).collect();
    let reloaded = post_raw(api, "/v1/reload", r#"{"pool": "web"}"#);
    assert_eq!(reloaded, (200, json!({"reloaded": ["web"]})));
    for (name, old) in names.iter().zip(before) {
        assert_ne!(pid_of(api, name), old, "{name} was not replaced");
    }
    let all = (200, json!({"reloaded": ["web", "other"]}));
    assert_eq!(post(api, "/v1/reload"), all);
}

#[test]
fn reads_typed_errors_and_the_event_stream() {
    let file = config("endpoints-reads", TWO_POOLS);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    within(|| pid_of(&api, "other:01"), "the workers to run");

    let (_, pools) = api.get("/v1/pools");
    let names: Vec<&str> = (pools.as_array().unwrap().iter())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "other"]);
    assert_eq!(api.get("/v1/workers").1.as_array().unwrap().len(), 2);
    assert_eq!(api.get("/v1/workers/all").1.as_array().unwrap().len(), 2);
    assert_eq!(api.get("/v1/workers/other").1[0]["name"], "other:01");
    let healthy = || Some(api.get("/v1/health")).filter(|(_, h)| h["healthy"] == true);
    let (_, health) = within(healthy, "healthy");
    assert_eq!(health["workers"].as_array().unwrap().len(), 2);
    let row = json!({"worker": "web:01", "pool": "web", "errors": 0, "warnings": 0,
        "panics": 0, "handler_errors": 0});
    assert_eq!(api.get("/v1/errors").1[0], row);

    typed_errors(&api);
    events_then_stop(&api, nanny);
}

/// 404 for unknown workers, pools and routes, 405, 400 for bad selectors
/// and bodies; none of which changes anything.
fn typed_errors(api: &Api) {
    let token = api.token.clone();
    let get = |path: &str| api.call("GET", path, Some(&token), None);
    for path in ["/v1/workers/web:09", "/v1/workers/99999"] {
        assert_error(get(path), 404, "unknown_worker", None);
    }
    assert_error(
        post(api, "/v1/workers/web:09/restart"),
        404,
        "unknown_worker",
        None,
    );
    assert_error(post(api, "/v1/workers/nope/stop"), 404, "unknown_pool", None);
    assert_error(get("/v1/pools/nope"), 404, "unknown_pool", None);
    for (path, body) in [
        ("/v1/pools/nope/scale", r#"{"workers": 2}"#),
        ("/v1/pools/nope/workers", ""),
        ("/v1/pools/nope/restart", ""),
        ("/v1/reload", r#"{"pool": "nope"}"#),
    ] {
        assert_error(post_raw(api, path, body), 404, "unknown_pool", None);
    }
    assert_error(get("/v1/nothing"), 404, "no_route", None);
    assert_error(get("/v1/stop"), 405, "method_not_allowed", None);
    assert_eq!(api.call("GET", "/v1/stop", None, None).0, 401, "the token first");

    assert_error(get("/v1/workers/web:xx"), 400, "bad_request", None);
    for (path, body) in [
        ("/v1/pools/web/scale", "not json"),
        ("/v1/pools/web/scale", r#"{"workers": "three"}"#),
        ("/v1/pools/web/scale", r#"{"workers": 0}"#),
        ("/v1/pools/web/scale", r#"{"workers": 2, "x": 1}"#),
        ("/v1/pools/web/scale", ""),
        ("/v1/stop", r#"{"hard": "yes"}"#),
        ("/v1/reload", r#"{"pool": 3}"#),
    ] {
        assert_error(post_raw(api, path, body), 400, "bad_request", None);
    }
    // None of that changed anything, and nanny still serves.
    assert_eq!(slots(api, "web").len(), 1);
    assert_eq!(api.get("/healthz").0, 200);
}

/// The event stream shows the worker a scale spawns; a stop through the
/// API answers 202, nanny exits 0 and the stream ends.
fn events_then_stop(api: &Api, nanny: Nanny) {
    let lines = event_lines(api);
    assert_eq!(post_raw(api, "/v1/pools/other/scale", r#"{"workers": 2}"#).0, 200);
    let data = loop {
        let line = lines.recv_timeout(PATIENCE).expect("event: worker-spawned");
        if line == "event: worker-spawned" {
            break lines.recv_timeout(PATIENCE).expect("its data");
        }
    };
    let event: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["kind"], "worker-spawned");
    assert_eq!(event["data"]["pool"], "other");
    assert_eq!(event["data"]["pid"].as_u64(), pid_of(api, "other:02"), "{event}");

    assert_eq!(post(api, "/v1/stop"), (202, json!({"stopping": true})));
    assert_eq!(nanny.wait().0.code(), Some(0));
    loop {
        match lines.recv_timeout(PATIENCE) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the event stream did not end"),
        }
    }
}

/// `GET /v1/events`, its lines sent to the channel (bounded: 1024) by a
/// thread that ends with the stream. Returns once the stream is open, so
/// subscribed.
fn event_lines(api: &Api) -> mpsc::Receiver<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = (agent.get(format!("{}/v1/events", api.url)))
        .header("Authorization", format!("Bearer {}", api.token))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
