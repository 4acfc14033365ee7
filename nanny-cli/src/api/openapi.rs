//! `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, written by hand
//! and checked in as `nanny-cli/openapi.json`. A test holds it against the
//! route registry both ways.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::routes::Route;

/// The document.
pub(crate) const DOCUMENT: &str = include_str!("../../openapi.json");

/// This part's rows of the registry.
pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get("/v1/openapi.json", document)]
}

/// `GET /v1/openapi.json`.
async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    found.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let documented = documented();
        let table = super::super::routes::table();
        let registered: BTreeSet<(String, String)> = (table.iter())
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(registered.len(), table.len(), "a route is registered twice");
        for route in &registered {
            assert!(documented.contains(route), "{route:?} is not in openapi.json");
        }
        for route in &documented {
            assert!(
                registered.contains(route),
                "{route:?} is documented but not registered"
            );
        }
    }

    #[test]
    fn open_routes_are_documented_without_security() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        for route in super::super::routes::table() {
            let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            let open = op["security"] == serde_json::json!([]);
            assert_eq!(
                open, route.open,
                "{} {}: open in the registry or the document",
                route.method, route.path
            );
        }
    }
}
