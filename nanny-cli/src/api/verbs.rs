//! The API's endpoints that change things: scale and add to a pool, the
//! worker verbs over a selector, a pool's restart, reload, stop.
//!
//! Each answers once the library's call has finished (a restart: the
//! replacement ready and the old worker reaped), so a client that waits
//! sees the result. A verb over a pool or `all` takes the pool's slots in
//! turn, skipping those it does not apply to (`start` takes stopped slots,
//! `stop`, `restart` and `reset` running ones); over one worker it is the
//! library's call, preconditions and all (409 with the reason).
//!
//! Every route reads its body ([`Body`]): those without fields take none
//! or `{}` ([`NoFields`]), so a stray body is refused, not ignored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nanny::{PoolInfo, WorkerRef};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{Body, NoFields, Segments};
use super::routes::Route;
use super::select::Selection;
use super::{ApiError, AppState};

/// This part's rows of the registry.
pub(crate) fn routes() -> Vec<Route> {
    let mut rows = vec![
        Route::post("/v1/pools/{pool}/scale", scale),
        Route::post("/v1/pools/{pool}/workers", add),
        Route::post("/v1/pools/{pool}/restart", restart_pool),
        Route::post("/v1/reload", reload),
        Route::post("/v1/stop", stop),
    ];
    for (path, verb) in [
        ("/v1/workers/{sel}/start", Verb::Start),
        ("/v1/workers/{sel}/stop", Verb::Stop),
        ("/v1/workers/{sel}/restart", Verb::Restart),
        ("/v1/workers/{sel}/remove", Verb::Remove),
        ("/v1/workers/{sel}/reset", Verb::Reset),
    ] {
        let handler = move |state, sel, _: Body<NoFields>| act(state, sel, verb);
        rows.push(Route::post(path, handler));
    }
    rows
}

/// The body of `scale`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    /// The pool's new size (at least 1).
    workers: usize,
}

/// `POST /v1/pools/{pool}/scale {"workers": N}`: resizes; the pool after.
async fn scale(
    State(state): State<AppState>,
    Segments(pool): Segments<String>,
    Body(body): Body<Scale>,
) -> Result<Json<PoolInfo>, ApiError> {
    state.supervisor.resize(&pool, body.workers).await?;
    Ok(Json(super::read::pool_info(&state.supervisor, &pool).await?))
}

/// `POST /v1/pools/{pool}/workers`: a new slot and its worker; its name
/// once it is ready.
async fn add(
    State(state): State<AppState>,
    Segments(pool): Segments<String>,
    _: Body<NoFields>,
) -> Result<Json<Value>, ApiError> {
    let id = state.supervisor.add_worker(&pool).await?;
    let inspect = state.supervisor.inspect().await?;
    let name = (inspect.workers.iter())
        .find(|w| w.id == id)
        .map_or_else(|| id.to_string(), |w| w.name.clone());
    Ok(Json(json!({ "worker": name })))
}

/// A verb of `POST /v1/workers/{sel}/{verb}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Restart,
    Remove,
    Reset,
}

impl Verb {
    /// Whether, over a pool or `all`, it applies to a slot stopped or not.
    fn applies(self, stopped: bool) -> bool {
        match self {
            Verb::Start => stopped,
            Verb::Stop | Verb::Restart | Verb::Reset => !stopped,
            Verb::Remove => true,
        }
    }

    async fn run(self, supervisor: &nanny::Supervisor, worker: WorkerRef) -> Result<(), nanny::Error> {
        match self {
            Verb::Start => supervisor.start_worker(worker).await.map(drop),
            Verb::Stop => supervisor.stop_worker(worker).await,
            Verb::Restart => supervisor.restart_worker(worker).await.map(drop),
            Verb::Remove => supervisor.remove_worker(worker).await,
            Verb::Reset => supervisor.reset_stats(worker).await,
        }
    }
}

/// `POST /v1/workers/{sel}/{verb}`: the names it was done to.
async fn act(state: State<AppState>, sel: Segments<String>, verb: Verb) -> Result<Json<Value>, ApiError> {
    let (State(state), Segments(sel)) = (state, sel);
    let inspect = state.supervisor.inspect().await?;
    let selection = Selection::parse(&sel, &inspect)?;
    let targets = selection.targets(&inspect)?;
    let one = matches!(selection, Selection::Worker(_));
    let mut done = Vec::new();
    for target in targets {
        if one || verb.applies(target.stopped) {
            verb.run(&state.supervisor, target.worker).await?;
            done.push(target.name);
        }
    }
    Ok(Json(json!({ "done": done })))
}

/// `POST /v1/pools/{pool}/restart`: a rolling restart of the pool; the
/// running slots it replaced.
async fn restart_pool(
    State(state): State<AppState>,
    Segments(pool): Segments<String>,
    _: Body<NoFields>,
) -> Result<Json<Value>, ApiError> {
    let info = super::read::pool_info(&state.supervisor, &pool).await?;
    state.supervisor.restart_all_workers(Some(&pool)).await?;
    let done: Vec<&str> = (info.slots.iter())
        .filter(|s| !s.stopped)
        .map(|s| s.name.as_str())
        .collect();
    Ok(Json(json!({ "done": done })))
}

/// The body of `reload`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reload {
    /// One pool; every pool when absent.
    pool: Option<String>,
}

/// `POST /v1/reload {"pool": optional}`: a rolling reload; the pools done.
async fn reload(State(state): State<AppState>, Body(body): Body<Reload>) -> Result<Json<Value>, ApiError> {
    let pools = match &body.pool {
        Some(pool) => vec![super::read::pool_info(&state.supervisor, pool).await?.name],
        None => (state.supervisor.inspect().await?.pools.into_iter())
            .map(|p| p.name)
            .collect(),
    };
    state.supervisor.reload(body.pool.as_deref()).await?;
    Ok(Json(json!({ "reloaded": pools })))
}

/// The body of `stop`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stop {
    /// A hard kill (SIGKILL to every worker) rather than a graceful stop.
    #[serde(default)]
    hard: bool,
}

/// `POST /v1/stop {"hard": optional}`: 202 at once, then the stop. It ends
/// with the supervisor, which ends the server.
async fn stop(State(state): State<AppState>, Body(body): Body<Stop>) -> (StatusCode, Json<Value>) {
    tracing::info!(hard = body.hard, "stop asked through the API");
    crate::systemd::notify("STOPPING=1");
    let supervisor = state.supervisor.clone();
    tokio::spawn(async move {
        if body.hard {
            supervisor.hard_kill().await;
        } else {
            supervisor.soft_kill().await;
        }
    });
    (StatusCode::ACCEPTED, Json(json!({ "stopping": true })))
}
