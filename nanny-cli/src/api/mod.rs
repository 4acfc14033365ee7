//! The REST API of `nanny run` (README.md, "The REST API"): an axum server
//! on `127.0.0.1:8887` by default, every route behind the bearer token of
//! [`auth`] but the open `GET /healthz`.
//!
//! What each part owns:
//! - [`auth`]: the token (configured, from the environment, or generated
//!   and written 0600), and the middleware that compares it in constant time.
//! - [`discovery`]: the state directory, and `api.json`, which tells the CLI
//!   where the API is and where its token lies.
//! - [`error`]: the typed JSON errors every route answers with, and
//!   [`body`] the extractors that answer bad requests with them.
//! - [`routes`]: the registry, one row per route; [`router`] is built from
//!   it, the open rows (only `/healthz` and the dashboard's data-free page
//!   shell) without the token, the others behind it.
//! - [`read`], [`verbs`], [`stream`], [`openapi`]: the `/v1` endpoints
//!   (selectors in [`select`]), the event stream and the OpenAPI document.
//! - this module: the shared [`AppState`], the router, and serving until the
//!   supervisor has closed.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Json, Router};
use serde_json::json;

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod discovery;
pub(crate) mod error;
pub(crate) mod openapi;
pub(crate) mod read;
pub(crate) mod routes;
pub(crate) mod select;
pub(crate) mod stream;
pub(crate) mod verbs;

pub(crate) use error::ApiError;

/// How long the server may take, once the supervisor has closed, to finish
/// the requests in flight before it is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The running supervisor.
    pub(crate) supervisor: nanny::Supervisor,
    /// The file `nanny run` was started with.
    #[allow(dead_code)] // for the endpoints to come (reload of the file)
    pub(crate) config: Arc<std::path::Path>,
    /// Restarts by reason, for `/metrics` (see [`crate::metrics::restarts`]).
    pub(crate) restarts: crate::metrics::Restarts,
    /// The live log (`GET /v1/logs`).
    pub(crate) logs: crate::logs::Hub,
}

/// The whole router, from [`routes::table`]: open rows as they are, the
/// rest behind the token; anything else is 404 `no_route`, another method
/// on a route 405 `method_not_allowed`; a body over [`body::MAX_BODY`]
/// 413 `payload_too_large`.
pub(crate) fn router(state: AppState, token: auth::Token) -> Router {
    let (mut open, mut authed) = (Router::new(), Router::new());
    for route in routes::table() {
        if route.open {
            open = open.route(route.path, route.handler);
        } else {
            authed = authed.route(route.path, route.handler);
        }
    }
    // Before the token's layer, which hides the method routers.
    let no_method = || async { ApiError::method_not_allowed() };
    let open = open.method_not_allowed_fallback(no_method);
    let authed = (authed.method_not_allowed_fallback(no_method))
        .route_layer(axum::middleware::from_fn_with_state(token, auth::require));
    open.merge(authed)
        .fallback(|| async { ApiError::not_found("no_route", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(body::MAX_BODY))
        .with_state(state)
}

/// `GET /healthz`: 200 while the API answers. Open, so it says nothing but
/// that.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// A bound API, ready to serve.
#[derive(Debug)]
pub(crate) struct Bound {
    listener: tokio::net::TcpListener,
    /// The address it is bound to (the port chosen when `:0` was asked).
    pub(crate) addr: SocketAddr,
}

/// Binds the API's address (before any worker starts, so a taken port
/// stops `nanny run` early).
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Bound { listener, addr })
}

/// The API over a listening TCP socket it inherited (an upgrade, or
/// systemd's socket named `api`) instead of binding one.
pub(crate) fn bind_from(socket: std::os::fd::OwnedFd) -> std::io::Result<Bound> {
    let socket = std::net::TcpListener::from(socket);
    socket.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let addr = listener.local_addr()?;
    Ok(Bound { listener, addr })
}

impl Bound {
    /// A copy of its socket, to hand to the nanny an upgrade starts.
    pub(crate) fn socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.listener.as_fd().try_clone_to_owned()
    }
}

/// Serves `router` on `bound` until the supervisor has closed, then gives the
/// requests in flight [`SHUTDOWN_GRACE`]. Streaming routes end their streams
/// when the supervisor closes (`Supervisor::closed`), so they do not hold the
/// shutdown.
pub(crate) async fn serve(bound: Bound, router: Router, supervisor: nanny::Supervisor) {
    let closed = supervisor.clone();
    let server = axum::serve(bound.listener, router)
        .with_graceful_shutdown(async move { closed.closed().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            if let Err(e) = result {
                tracing::error!("the API server failed: {e}");
            }
        }
        () = async {
            supervisor.closed().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("the API server did not finish in {SHUTDOWN_GRACE:?}; dropped"),
    }
}
