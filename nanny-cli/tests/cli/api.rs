//! The REST API's gate: the open `/healthz`, the token on everything else,
//! and the files that tell the CLI where the API is.

use std::os::unix::fs::PermissionsExt;

use crate::support::*;

const ONE_SLEEPER: &str = r#"
[[pool]]
name = "sleepers"
command = "sh"
args = ["-c", "echo token=$NANNY_API_TOKEN; exec sleep 1000"]
plain = true
workers = 1
"#;

#[test]
fn healthz_is_open_and_everything_else_needs_the_token() {
    let file = config("api-gate", ONE_SLEEPER);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    assert_eq!(
        api.call("GET", "/healthz", None, None),
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, body) = api.call("GET", "/v1/status", None, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = api.call("GET", "/v1/status", Some("not-the-token"), None);
    assert_eq!(status, 401);
    let wrong_case = api.token.to_uppercase();
    assert_eq!(api.call("GET", "/v1/status", Some(&wrong_case), None).0, 401);
    let (status, body) = api.get("/v1/status");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pools"][0]["name"], "sleepers");
    assert_eq!(
        api.call("GET", "/no/such/route", Some(&api.token.clone()), None)
            .0,
        404
    );
    // The token never reaches the log.
    assert!(!nanny.stderr().contains(&api.token), "the token was logged");
    nanny.signal("TERM");
    let (status, _) = nanny.wait();
    assert_eq!(status.code(), Some(0));
    assert!(
        !file.parent().unwrap().join(".nanny/api.json").exists(),
        "api.json outlived nanny"
    );
}

#[test]
fn the_generated_token_and_api_json_are_readable_only_by_their_owner() {
    let file = config("api-files", ONE_SLEEPER);
    let nanny = Nanny::start(&["run"], &file);
    let d = discovery(&file);
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d["token_file"].as_str().unwrap()), 0o600);
    let api_json = file.parent().unwrap().join(".nanny/api.json");
    assert_eq!(mode(api_json.to_str().unwrap()), 0o600);
    assert_eq!(d["pid"], nanny.pid());
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn a_token_from_the_environment_is_used_and_not_passed_to_workers() {
    let file = config("api-env", ONE_SLEEPER);
    let token = "token-from-the-environment-0123456789";
    let nanny = Nanny::start_with_env(&["run"], &file, &[("NANNY_API_TOKEN", token)]);
    let d = discovery(&file);
    assert!(d["token_file"].is_null(), "{d}");
    let api = Api::with_token(&file, token);
    assert_eq!(api.get("/v1/status").0, 200);
    // The worker printed its NANNY_API_TOKEN to the captured output: empty.
    within(
        || nanny.stderr().contains("token=").then_some(()),
        "the worker's line",
    );
    assert!(
        !nanny.stderr().contains(token),
        "the token reached a worker or the log"
    );
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn the_api_can_be_switched_off() {
    let file = config("api-off", &format!("{ONE_SLEEPER}\n[api]\nenabled = false\n"));
    let nanny = Nanny::start(&["run"], &file);
    nanny.wait_ready();
    assert!(
        !file.parent().unwrap().join(".nanny").exists(),
        "an API file was written"
    );
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn an_api_bound_beyond_loopback_warns_at_start() {
    let file = config(
        "api-wide",
        &format!("{ONE_SLEEPER}\n[api]\nlisten = \"0.0.0.0:0\"\n"),
    );
    let nanny = Nanny::start(&["run"], &file);
    nanny.wait_ready();
    assert!(
        nanny.stderr().contains("not loopback: put TLS in front of it"),
        "{}",
        nanny.stderr()
    );
    nanny.signal("TERM");
    assert_eq!(nanny.wait().0.code(), Some(0));
}

#[test]
fn status_says_how_descendants_are_contained_and_the_file_can_switch_it_off() {
    let file = config("api-containment", ONE_SLEEPER);
    let nanny = Nanny::start(&["run"], &file);
    let (code, body) = Api::of(&file).get("/v1/status");
    assert_eq!(code, 200, "{body}");
    // The suite runs as root, with `nanny-init` built beside `nanny`.
    assert_eq!(body["containment"]["kind"], "namespace", "{body}");
    let init = body["containment"]["init"].as_str().unwrap_or_default();
    assert!(init.ends_with("/nanny-init"), "{body}");
    drop(nanny);

    let off = format!("[supervisor]\ncontain_descendants = false\n{ONE_SLEEPER}");
    let file = config("api-containment-off", &off);
    let nanny = Nanny::start(&["run"], &file);
    let (_, body) = Api::of(&file).get("/v1/status");
    assert_eq!(body["containment"]["kind"], "process_group", "{body}");
    // Said at start; the test reads nanny's stderr through a pipe, on a
    // thread of its own, which may not have the line yet.
    within(
        || {
            nanny
                .stderr()
                .contains("no PID namespace per worker")
                .then_some(())
        },
        "the containment note at start",
    );
}
