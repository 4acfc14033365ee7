//! `GET /v1/logs?target=SEL&lines=N&follow=true`: the recent lines of a
//! worker (name or id), a pool, or `all`, as `application/x-ndjson`, one
//! `{"time","pool","worker","stream","line"}` object per line; with
//! `follow`, the response stays open and new lines follow until the
//! supervisor closes. A follower too slow for the broadcast
//! ([`super::LIVE`] lines) gets `{"lagged": N}` for the N it missed.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::LogLine;
use crate::api::{ApiError, AppState};

/// Lines sent when the query sets none.
pub(crate) const DEFAULT_LINES: usize = 100;

/// The routes of this part (authenticated).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/logs", get(logs))
}

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    /// A worker name, a worker id, a pool, or `all` (the default).
    target: Option<String>,
    /// How many recent lines (default [`DEFAULT_LINES`], at most
    /// [`super::RECENT`] per pool).
    lines: Option<usize>,
    /// Keep the response open with new lines.
    #[serde(default)]
    follow: bool,
}

/// Which lines a selector means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    All,
    Pool(String),
    Name(String),
    Id(nanny::WorkerId),
}

impl Target {
    fn keeps(&self, l: &LogLine) -> bool {
        match self {
            Self::All => true,
            Self::Pool(p) => *l.pool == **p,
            Self::Name(n) => l.worker == *n,
            Self::Id(id) => l.id == *id,
        }
    }
}

async fn logs(
    State(state): State<AppState>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let target = resolve(&state, q.target.as_deref().unwrap_or("all")).await?;
    let (recent, live) = state
        .logs
        .recent(&|l| target.keeps(l), q.lines.unwrap_or(DEFAULT_LINES));
    let follow = Follow {
        recent: recent.into_iter(),
        live: q.follow.then_some(live),
        target,
        supervisor: state.supervisor.clone(),
    };
    let body = Body::from_stream(futures::stream::unfold(follow, Follow::next));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// A response's lines: the recent ones, then (following) the live ones.
/// Dropped with the response when the client goes away.
struct Follow {
    recent: std::vec::IntoIter<Arc<LogLine>>,
    live: Option<broadcast::Receiver<Arc<LogLine>>>,
    target: Target,
    supervisor: nanny::Supervisor,
}

impl Follow {
    /// The next chunk; `None` ends the body: the recent lines are sent and
    /// it does not follow, or the supervisor has closed.
    async fn next(mut self) -> Option<(Result<String, Infallible>, Self)> {
        if let Some(line) = self.recent.next() {
            return Some((Ok(ndjson(&line.to_json())), self));
        }
        let live = self.live.as_mut()?;
        loop {
            let next = tokio::select! {
                next = live.recv() => next,
                () = self.supervisor.closed() => return None,
            };
            let value = match next {
                Ok(line) if self.target.keeps(&line) => line.to_json(),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => serde_json::json!({ "lagged": n }),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(ndjson(&value)), self));
        }
    }
}

fn ndjson(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// What `sel` means: `all`, a pool, a worker name (`pool:NN`) or id.
async fn resolve(state: &AppState, sel: &str) -> Result<Target, ApiError> {
    if sel == "all" {
        return Ok(Target::All);
    }
    let info = state.supervisor.inspect().await?;
    if info.pools.iter().any(|p| p.name == sel) {
        return Ok(Target::Pool(sel.to_owned()));
    }
    let unknown = || ApiError::not_found("unknown_worker", format!("no worker {sel:?}"));
    match sel.parse::<nanny::WorkerRef>() {
        Ok(nanny::WorkerRef::Id(id)) => match info.workers.iter().any(|w| w.id == id) {
            true => Ok(Target::Id(id)),
            false => Err(unknown()),
        },
        Ok(nanny::WorkerRef::Name(name)) if name.contains(':') => {
            let known = info.pools.iter().flat_map(|p| &p.slots).any(|s| s.name == name);
            match known {
                true => Ok(Target::Name(name)),
                false => Err(unknown()),
            }
        }
        _ => Err(ApiError::not_found(
            "unknown_pool",
            format!("no pool or worker {sel:?} (a worker name pool:NN, an id, a pool, or all)"),
        )),
    }
}
