//! Extractors that answer a bad request in the API's own JSON shape
//! (`400 bad_request`, `413 payload_too_large`) rather than axum's
//! plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::ApiError;

/// The largest body the API reads, in bytes. Its bodies are a field or
/// two; the router sets it as axum's body limit too (see [`super::router`]).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A JSON object body of type `T`. An empty body reads as `{}`, so a body
/// whose fields are all optional may be left out. Anything but an object
/// is refused, an array too (serde would read `[5]` as `{"workers": 5}`).
/// A body over [`MAX_BODY`] is `413`, before it is read when its
/// `Content-Length` says so.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

/// The body of the routes that take none: empty, or `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFields {}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared =
            (request.headers().get(CONTENT_LENGTH)).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(ApiError::payload_too_large(MAX_BODY));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(MAX_BODY),
                _ => ApiError::bad_request(e.body_text()),
            })?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?
        };
        if !value.is_object() {
            return Err(ApiError::bad_request("bad JSON body: not an object"));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
    }
}

/// The path's parameters, as `T` (a `String`, or a tuple of them).
#[derive(Debug)]
pub(crate) struct Segments<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Segments(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}
