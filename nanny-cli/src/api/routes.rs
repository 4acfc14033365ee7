//! The route registry: every route of the API as one row (method, path,
//! handler, open or not), so the router is built from one table and a test
//! can hold that table against the OpenAPI document.
//!
//! Each part of the API contributes its rows through its own
//! `pub(crate) fn routes() -> Vec<Route>`; [`table`] lists them all.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};

use super::AppState;

/// One route: what answers `method path`, and whether it needs the token.
#[derive(Debug)]
pub(crate) struct Route {
    /// Its method.
    #[cfg_attr(not(test), allow(dead_code))] // the registry's tests read it
    pub(crate) method: Method,
    /// Its path, in axum's syntax (`/v1/pools/{pool}`), as in the document.
    pub(crate) path: &'static str,
    /// Open: served without the token (only `/healthz` and the
    /// dashboard's data-free shell).
    pub(crate) open: bool,
    /// The handler.
    pub(crate) handler: MethodRouter<AppState>,
}

impl Route {
    /// `GET path`, behind the token.
    pub(crate) fn get<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new(Method::GET, path, routing::get(handler))
    }

    /// `POST path`, behind the token.
    pub(crate) fn post<H, T>(path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new(Method::POST, path, routing::post(handler))
    }

    fn new(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        Self {
            method,
            path,
            open: false,
            handler,
        }
    }

    /// This route, served without the token.
    pub(crate) fn open(self) -> Self {
        Self { open: true, ..self }
    }
}

/// Every route of the API. Other parts add their `routes()` here.
pub(crate) fn table() -> Vec<Route> {
    let mut rows = vec![Route::get("/healthz", super::healthz).open()];
    rows.extend(super::read::routes());
    rows.extend(super::verbs::routes());
    rows.extend(super::stream::routes());
    rows.extend(super::openapi::routes());
    rows.extend(crate::logs::route::routes());
    rows.extend(crate::dashboard::routes());
    rows.extend(crate::dashboard::live::routes());
    rows.extend(crate::metrics::routes());
    rows
}
