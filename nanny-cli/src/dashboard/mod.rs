//! The live dashboard (README.md, "The dashboard"): a page with no build
//! step whose assets are embedded in the binary.
//!
//! What each part owns:
//! - this module: the data-free page shell (`GET /`) and its assets
//!   (`GET /assets/app.js`, `app.css`, `favicon.svg`), served without the token
//!   and under a strict Content-Security-Policy (no inline script or style,
//!   nothing from another origin, `connect-src 'self'`);
//! - [`live`]: `GET /v1/live`, the authenticated server-sent event stream of
//!   snapshots the page draws.
//!
//! The page asks for the token once, keeps it in `sessionStorage` (never in
//! a URL) and reads `/v1/live` with `fetch` and the Authorization header,
//! since an `EventSource` cannot send one.

use axum::extract::Path;
use axum::http::header::{HeaderName, CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::api::{ApiError, AppState};

pub(crate) mod live;

/// The page shell: markup only, no data.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The page's script.
const APP_JS: &str = include_str!("assets/app.js");
/// The page's style sheet.
const APP_CSS: &str = include_str!("assets/app.css");
/// The page's icon.
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The policy every dashboard answer carries: scripts, styles and
/// connections from this origin only, no inline script or style, no
/// plugins, no framing, forms posted nowhere else.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The open routes: the shell and its assets. `/v1/live` is in
/// [`live::routes`], behind the token.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route("/assets/{file}", get(assets))
}

/// `GET /assets/{file}`: one of the embedded assets, or 404.
async fn assets(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset("text/javascript; charset=utf-8", APP_JS),
        "app.css" => asset("text/css; charset=utf-8", APP_CSS),
        "favicon.svg" => asset("image/svg+xml", FAVICON_SVG),
        _ => ApiError::not_found("no_route", format!("no asset {file:?}")).into_response(),
    }
}

/// An embedded file with its type and the dashboard's security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, content_type),
        (HeaderName::from_static("content-security-policy"), CSP),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (HeaderName::from_static("referrer-policy"), "no-referrer"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
        // Assets change with the binary; a browser must not keep an old one.
        (CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}
