//! The REST API's `/v1` endpoints against a running `nanny run` with real
//! `sleep` workers: reads, the worker verbs over selectors, scale, add,
//! restart, reload, stop, typed errors, the event stream, and the OpenAPI
//! document (every route it lists answers, none does anything without the
//! token).

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

/// `POST path` with the token and a JSON body.
fn post(api: &Api, path: &str, body: Value) -> (u16, Value) {
    api.call("POST", path, Some(&api.token.clone()), Some(body))
}

/// `POST path` with the token and `body` as it is (not JSON, maybe).
fn post_raw(api: &Api, path: &str, body: &str) -> (u16, Value) {
    let mut response = agent()
        .post(format!("{}{path}", api.url))
        .header("Authorization", format!("Bearer {}", api.token))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    (
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
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
    let (status, pool) = post(&api, "/v1/pools/web/scale", json!({"workers": 3}));
    assert_eq!((status, pool["target"].as_u64()), (200, Some(3)), "{pool}");
    let (_, workers) = api.get("/v1/workers/web");
    let pids: Vec<u64> = (workers.as_array().unwrap().iter())
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{workers}");
    assert!(pids.iter().all(|&p| alive(p as u32)));

    // stop: listed stopped, its process gone; stopping it again is a conflict.
    let old = pid_of(&api, "web:02").unwrap();
    assert_eq!(
        post(&api, "/v1/workers/web:02/stop", json!({})),
        (200, json!({"done": ["web:02"]}))
    );
    let slot = slots(&api, "web")
        .into_iter()
        .find(|s| s["name"] == "web:02")
        .unwrap();
    assert_eq!(slot["stopped"], true, "{slot}");
    assert!(!alive(old as u32), "the stopped worker's process is gone");
    assert_eq!(api.get("/v1/workers/web:02"), (200, json!([])));
    let again = post(&api, "/v1/workers/web:02/stop", json!({}));
    assert_error(again, 409, "conflict", Some("stopped"));
    assert_error(
        post(&api, "/v1/workers/web:02/reset", json!({})),
        409,
        "conflict",
        Some("stopped"),
    );

    // start: it runs again; starting a running worker is a conflict.
    assert_eq!(
        post(&api, "/v1/workers/web:02/start", json!({})),
        (200, json!({"done": ["web:02"]}))
    );
    assert!(pid_of(&api, "web:02").is_some_and(|p| alive(p as u32)));
    assert_error(
        post(&api, "/v1/workers/web:01/start", json!({})),
        409,
        "conflict",
        Some("running"),
    );

    // restart: a new pid in the same slot; the old process is gone.
    let old = pid_of(&api, "web:01").unwrap();
    assert_eq!(
        post(&api, "/v1/workers/web:01/restart", json!({})),
        (200, json!({"done": ["web:01"]}))
    );
    let new = pid_of(&api, "web:01").unwrap();
    assert_ne!(new, old);
    assert!(!alive(old as u32));
    // ... and by the worker's id.
    let (_, one) = api.get("/v1/workers/web:01");
    let id = one[0]["id"].as_u64().unwrap();
    let by_id = post(&api, &format!("/v1/workers/{id}/restart"), json!({}));
    assert_eq!(by_id, (200, json!({"done": ["web:01"]})));
    assert_ne!(pid_of(&api, "web:01"), Some(new));

    // reset, remove, add (the smallest free name).
    assert_eq!(
        post(&api, "/v1/workers/web:01/reset", json!({})),
        (200, json!({"done": ["web:01"]}))
    );
    assert_eq!(
        post(&api, "/v1/workers/web:03/remove", json!({})),
        (200, json!({"done": ["web:03"]}))
    );
    assert_eq!(slots(&api, "web").len(), 2);
    assert_eq!(
        post(&api, "/v1/pools/web/workers", json!({})),
        (200, json!({"worker": "web:03"}))
    );
    assert_eq!(slots(&api, "web").len(), 3);

    // A verb over a pool takes the slots it applies to.
    post(&api, "/v1/workers/web:03/stop", json!({}));
    assert_eq!(
        post(&api, "/v1/workers/web/start", json!({})),
        (200, json!({"done": ["web:03"]}))
    );

    // A pool's restart and a reload replace every worker.
    let other = pid_of(&api, "other:01").unwrap();
    let restarted = post(&api, "/v1/pools/other/restart", json!({}));
    assert_eq!(restarted, (200, json!({"done": ["other:01"]})));
    assert_ne!(pid_of(&api, "other:01"), Some(other));
    let before: Vec<Option<u64>> = ["web:01", "web:02", "web:03"]
        .iter()
        .map(|n| pid_of(&api, n))
        .collect();
    assert_eq!(
        post(&api, "/v1/reload", json!({"pool": "web"})),
        (200, json!({"reloaded": ["web"]}))
    );
    for (name, old) in ["web:01", "web:02", "web:03"].iter().zip(before) {
        assert_ne!(pid_of(&api, name), old, "{name} was not replaced");
    }
    assert_eq!(
        post_raw(&api, "/v1/reload", ""),
        (200, json!({"reloaded": ["web", "other"]}))
    );

    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn reads_and_typed_errors() {
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
    let (_, health) = within(
        || Some(api.get("/v1/health")).filter(|(_, h)| h["healthy"] == true),
        "healthy",
    );
    assert_eq!(health["workers"].as_array().unwrap().len(), 2);
    let (_, errors) = api.get("/v1/errors");
    assert_eq!(
        errors[0],
        json!({"worker": "web:01", "pool": "web", "errors": 0, "warnings": 0, "panics": 0, "handler_errors": 0})
    );

    // 404: unknown worker, pool, route.
    assert_error(api.get("/v1/workers/web:09"), 404, "unknown_worker", None);
    assert_error(api.get("/v1/workers/99999"), 404, "unknown_worker", None);
    assert_error(
        post(&api, "/v1/workers/web:09/restart", json!({})),
        404,
        "unknown_worker",
        None,
    );
    assert_error(
        post(&api, "/v1/workers/nope/stop", json!({})),
        404,
        "unknown_pool",
        None,
    );
    assert_error(api.get("/v1/pools/nope"), 404, "unknown_pool", None);
    assert_error(
        post(&api, "/v1/pools/nope/scale", json!({"workers": 2})),
        404,
        "unknown_pool",
        None,
    );
    assert_error(
        post(&api, "/v1/pools/nope/workers", json!({})),
        404,
        "unknown_pool",
        None,
    );
    assert_error(
        post(&api, "/v1/reload", json!({"pool": "nope"})),
        404,
        "unknown_pool",
        None,
    );
    assert_error(api.get("/v1/nothing"), 404, "no_route", None);
    // 400: a selector that names nothing, bad bodies.
    assert_error(api.get("/v1/workers/web:xx"), 400, "bad_request", None);
    for body in [
        "not json",
        r#"{"workers": "three"}"#,
        r#"{"workers": 0}"#,
        r#"{"workers": 2, "x": 1}"#,
        "{}",
    ] {
        assert_error(
            post_raw(&api, "/v1/pools/web/scale", body),
            400,
            "bad_request",
            None,
        );
    }
    assert_error(
        post_raw(&api, "/v1/stop", r#"{"hard": "yes"}"#),
        400,
        "bad_request",
        None,
    );
    assert_error(
        post_raw(&api, "/v1/reload", r#"{"pool": 3}"#),
        400,
        "bad_request",
        None,
    );
    // None of that changed anything, and nanny still serves.
    assert_eq!(slots(&api, "web").len(), 1);
    assert_eq!(api.get("/healthz").0, 200);

    // The event stream shows the workers a scale spawns, then ends with nanny.
    let lines = event_lines(&api);
    let (status, _) = post(&api, "/v1/pools/other/scale", json!({"workers": 2}));
    assert_eq!(status, 200);
    let data = loop {
        let line = lines.recv_timeout(PATIENCE).expect("event: worker-spawned");
        if line == "event: worker-spawned" {
            break lines.recv_timeout(PATIENCE).expect("its data");
        }
    };
    let event: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["kind"], "worker-spawned");
    assert_eq!(event["data"]["pool"], "other");
    assert_eq!(event["data"]["pid"].as_u64(), pid_of(&api, "other:02"), "{event}");

    // Stop through the API: 202, then nanny exits 0 and the stream ends.
    assert_eq!(
        post(&api, "/v1/stop", json!({})),
        (202, json!({"stopping": true}))
    );
    assert_eq!(nanny.wait().0.code(), Some(0));
    loop {
        match lines.recv_timeout(PATIENCE) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the event stream did not end"),
        }
    }
}

/// `GET /v1/events`, its lines sent to the channel by a thread that ends
/// with the stream. Returns once the stream is open (subscribed).
fn event_lines(api: &Api) -> mpsc::Receiver<String> {
    let response = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("{}/v1/events", api.url))
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
