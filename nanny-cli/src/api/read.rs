//! The API's read-only endpoints: status, pools, workers, health, errors.

use axum::extract::State;
use axum::Json;
use nanny::{Inspect, PoolInfo, WorkerHealth, WorkerState};
use serde_json::{json, Value};

use super::body::Segments;
use super::routes::Route;
use super::select::Selection;
use super::{ApiError, AppState};

/// This part's rows of the registry.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/status", status),
        Route::get("/v1/pools", pools),
        Route::get("/v1/pools/{pool}", pool),
        Route::get("/v1/workers", workers),
        Route::get("/v1/workers/{sel}", selected_workers),
        Route::get("/v1/health", health),
        Route::get("/v1/errors", errors),
    ]
}

/// `GET /v1/status`: the supervisor's `inspect()` snapshot.
async fn status(State(state): State<AppState>) -> Result<Json<Inspect>, ApiError> {
    Ok(Json(state.supervisor.inspect().await?))
}

/// `GET /v1/pools`: every pool.
async fn pools(State(state): State<AppState>) -> Result<Json<Vec<PoolInfo>>, ApiError> {
    Ok(Json(state.supervisor.inspect().await?.pools))
}

/// `GET /v1/pools/{pool}`: one pool.
async fn pool(
    State(state): State<AppState>,
    Segments(name): Segments<String>,
) -> Result<Json<PoolInfo>, ApiError> {
    Ok(Json(pool_info(&state.supervisor, &name).await?))
}

/// The pool named `name` as `inspect()` sees it, or 404 `unknown_pool`.
pub(crate) async fn pool_info(supervisor: &nanny::Supervisor, name: &str) -> Result<PoolInfo, ApiError> {
    let inspect = supervisor.inspect().await?;
    (inspect.pools.into_iter())
        .find(|p| p.name == name)
        .ok_or_else(|| {
            nanny::Error::UnknownPool {
                pool: name.to_owned(),
            }
            .into()
        })
}

/// `GET /v1/workers`: every worker process's health.
async fn workers(State(state): State<AppState>) -> Result<Json<Vec<WorkerHealth>>, ApiError> {
    Ok(Json(state.supervisor.health().await?))
}

/// `GET /v1/workers/{sel}`: the health of the worker processes `sel`
/// names (a stopped slot has none: `[]`).
async fn selected_workers(
    State(state): State<AppState>,
    Segments(sel): Segments<String>,
) -> Result<Json<Vec<WorkerHealth>>, ApiError> {
    let inspect = state.supervisor.inspect().await?;
    let selection = Selection::parse(&sel, &inspect)?;
    if let Selection::Worker(_) = selection {
        selection.targets(&inspect)?; // 404 for no such worker
    }
    let mut health = state.supervisor.health().await?;
    health.retain(|w| selection.covers(w));
    Ok(Json(health))
}

/// `GET /v1/health`: `healthy` when no pool is failed and every slot not
/// stopped has a running (ready or busy) worker; and every worker's health.
async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let inspect = state.supervisor.inspect().await?;
    let running = |id: nanny::WorkerId| {
        (inspect.workers.iter())
            .any(|w| w.id == id && matches!(w.state, WorkerState::Ready | WorkerState::Busy))
    };
    let healthy = inspect.pools.iter().all(|p| {
        !p.failed
            && (p.slots.iter())
                .filter(|s| !s.stopped)
                .all(|s| s.worker.is_some_and(running))
    });
    Ok(Json(json!({ "healthy": healthy, "workers": inspect.workers })))
}

/// `GET /v1/errors`: each worker's error and warning counts.
async fn errors(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let health = state.supervisor.health().await?;
    Ok(Json(health.iter().map(error_row).collect()))
}

/// One worker's row of `GET /v1/errors`: its captured-output counts and
/// what its SDK reported.
fn error_row(w: &WorkerHealth) -> Value {
    json!({
        "worker": w.name,
        "pool": w.pool,
        "errors": w.errors,
        "warnings": w.warnings,
        // filled by the SDK's own reports (handler panics, uncaught errors)
        // once WorkerHealth carries them.
        "panics": 0,
        "handler_errors": 0,
    })
}
