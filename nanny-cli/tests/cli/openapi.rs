//! The OpenAPI document against a running `nanny run`: every GET it lists
//! answers with the token, and every route but the open ones answers 401
//! without it, and does nothing.

use serde_json::Value;

use crate::support::*;

const ONE_WEB: &str = r#"
[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 1000"]
plain = true
silent = true
workers = 1
"#;

/// `path` with each `{param}` replaced by its example in the document.
fn concrete(doc: &Value, path: &str, op: &Value) -> String {
    let params = (op["parameters"].as_array().into_iter().flatten())
        .chain(doc["paths"][path]["parameters"].as_array().into_iter().flatten());
    let mut out = path.to_owned();
    for p in params {
        let p = match p["$ref"].as_str() {
            Some(r) => &doc["components"]["parameters"][r.rsplit('/').next().unwrap()],
            None => p,
        };
        if p["in"] == "path" {
            let example = p["example"].as_str().expect("a path parameter has an example");
            out = out.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), example);
        }
    }
    out
}

/// `METHOD url`'s status and, for a 404, its error code; the body of a 200
/// is not read (a stream would not end).
fn probe(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match method {
        "GET" => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        "POST" => {
            let mut r = agent.post(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            // The body that would act if the token were right.
            let body = if url.ends_with("/scale") {
                r#"{"workers": 3}"#
            } else {
                "{}"
            };
            r.header("Content-Type", "application/json").send(body)
        }
        other => panic!("the document has a {other} route"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let code = if status == 404 {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        body["error"]["code"].as_str().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    (status, code)
}

#[test]
fn every_documented_route_answers_and_none_acts_without_the_token() {
    let file = config("openapi", ONE_WEB);
    let nanny = Nanny::start(&["run"], &file);
    let api = Api::of(&file);
    let pid = within(
        || {
            let (_, pool) = api.get("/v1/pools/web");
            pool["slots"][0]["pid"].as_u64()
        },
        "web:01 to run",
    );
    let (status, doc) = api.get("/v1/openapi.json");
    assert_eq!(status, 200);
    let checked_in: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(doc, checked_in, "the served document is the checked-in one");

    let probed = probe_every_route(&api, &doc);
    assert!(probed >= 20, "only {probed} routes probed");

    // Nothing happened: still running, same single worker, no stop begun.
    assert!(alive(nanny.pid()));
    let (_, pool) = api.get("/v1/pools/web");
    assert_eq!(pool["target"], 1, "{pool}");
    assert_eq!(pool["slots"].as_array().unwrap().len(), 1, "{pool}");
    assert_eq!(
        pool["slots"][0]["pid"].as_u64(),
        Some(pid),
        "web:01 was replaced or stopped"
    );
    assert!(!nanny.stderr().contains("stop asked"), "{}", nanny.stderr());

    // A hard stop through the API: 202, nanny exits 0 and its worker is gone.
    let answer = api.call(
        "POST",
        "/v1/stop",
        Some(&api.token.clone()),
        Some(serde_json::json!({"hard": true})),
    );
    assert_eq!(answer, (202, serde_json::json!({"stopping": true})));
    assert_eq!(nanny.wait().0.code(), Some(0));
    assert!(!alive(pid as u32), "the worker outlived a hard stop");
}

/// Probes every route of `doc`: a GET answers with the token (neither 405
/// nor 404 `no_route`), and all but the open ones answer 401 without it
/// or with a wrong one. Returns how many routes it probed.
fn probe_every_route(api: &Api, doc: &Value) -> usize {
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let url = format!("{}{}", api.url, concrete(doc, path, op));
            let open = op["security"] == serde_json::json!([]);
            if method == "GET" {
                let (status, code) = probe(&method, &url, Some(&api.token));
                assert!(status != 405 && code != "no_route", "GET {path}: {status} {code}");
            }
            if !open {
                assert_eq!(
                    probe(&method, &url, None).0,
                    401,
                    "{method} {path} without the token"
                );
                assert_eq!(
                    probe(&method, &url, Some("wrong")).0,
                    401,
                    "{method} {path} with a wrong token"
                );
            }
            probed += 1;
        }
    }
    probed
}
