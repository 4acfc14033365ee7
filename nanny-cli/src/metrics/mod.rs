//! `GET /metrics`: the supervisor's figures in the OpenMetrics text format
//! (prometheus-client), behind the API's token. README.md, "The `nanny`
//! command", lists the families.
//!
//! What each part owns:
//! - [`restarts`]: restarts by reason, counted by a task that reads the
//!   supervisor's events (the only figure the library does not keep).
//! - [`render`]: one scrape, from the `inspect()` snapshot and those counts.
//! - this module: the route.
//!
//! Served as `application/openmetrics-text; version=1.0.0; charset=utf-8`,
//! which Prometheus asks for and reads (counters end in `_total`, the text
//! ends in `# EOF`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::api::routes::Route;
use crate::api::{ApiError, AppState};

pub(crate) mod render;
pub(crate) mod restarts;

pub(crate) use restarts::{spawn_counter, Restarts};

/// The exposition's media type.
pub(crate) const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics route (authenticated: merged into the API's `authed`).
pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get("/metrics", metrics)]
}

/// `GET /metrics`: one scrape.
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let inspect = state.supervisor.inspect().await?;
    let snapshot = render::Snapshot::new(inspect, &state.restarts);
    let body = render::render(snapshot).map_err(|_| ApiError::internal("cannot encode the metrics"))?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], body))
}
