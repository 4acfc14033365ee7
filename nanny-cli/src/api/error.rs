//! The API's errors: a status and a JSON body
//! `{"error": {"code": "...", "message": "...", "reason": "..."}}`, where
//! `code` is a stable machine-readable word and `reason` (409 only) says what
//! the operation conflicts with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) reason: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// 401: no token, or not the right one.
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer TOKEN)",
        )
    }

    /// 404: an unknown worker, pool or route.
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405: a route that exists, with another method.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route takes another method (see /v1/openapi.json)",
        )
    }

    /// 400: a body or query that does not parse or makes no sense.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 413: a body over the API's limit of `limit` bytes.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the API's limit of {limit} bytes"),
        )
    }

    /// 409: the operation conflicts with the target's state; `reason` is a
    /// stable word (`running`, `stopped`, `leaving`, `busy`, `no-workers`,
    /// `pool-failed`, `slot-parked`).
    pub(crate) fn conflict(message: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::new(StatusCode::CONFLICT, "conflict", message)
        }
    }

    /// 503: the supervisor is stopping or stopped.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: anything else the supervisor reported.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<nanny::Error> for ApiError {
    /// The status and `code` of each library error (README.md, "The REST
    /// API"): unknown targets 404, refused arguments 400, conflicts 409
    /// with their reason, a worker that did not start 500 `start_failed`,
    /// a stopping supervisor 503.
    fn from(e: nanny::Error) -> Self {
        use nanny::Error as E;
        let message = e.to_string();
        match e {
            E::UnknownWorker { .. } => Self::not_found("unknown_worker", message),
            E::UnknownPool { .. } => Self::not_found("unknown_pool", message),
            E::Conflict { reason, .. } => Self::conflict(message, conflict_reason(reason)),
            E::NoWorkers { .. } => Self::conflict(message, "no-workers"),
            E::PoolFailed { .. } => Self::conflict(message, "pool-failed"),
            E::SlotParked { .. } => Self::conflict(message, "slot-parked"),
            E::InvalidArgument(_) | E::Config(_) => Self::bad_request(message),
            E::StartFailed { .. } => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "start_failed", message),
            E::ShuttingDown | E::Killed => Self::unavailable(message),
            _ => Self::internal(message),
        }
    }
}

/// The stable word of a [`nanny::manage::Conflict`] (the message says which
/// operation a `busy` one waits for).
fn conflict_reason(reason: nanny::manage::Conflict) -> &'static str {
    use nanny::manage::Conflict as C;
    match reason {
        C::Running => "running",
        C::Stopped => "stopped",
        C::Leaving => "leaving",
        C::Busy(_) => "busy",
        _ => "conflict",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(reason) = self.reason {
            error["reason"] = reason.into();
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use nanny::manage::{Conflict, Operation, StartFailure};
    use nanny::Error as E;

    use super::*;

    fn mapped(e: E) -> (u16, &'static str, Option<String>) {
        let api = ApiError::from(e);
        (api.status.as_u16(), api.code, api.reason)
    }

    #[test]
    fn library_errors_map_to_stable_statuses_codes_and_reasons() {
        let worker = nanny::WorkerRef::Name("web:01".into());
        assert_eq!(mapped(E::UnknownWorker { worker }), (404, "unknown_worker", None));
        assert_eq!(
            mapped(E::UnknownPool { pool: "web".into() }),
            (404, "unknown_pool", None)
        );
        let conflict = |reason| E::Conflict {
            operation: Operation::Start,
            target: "web:01".into(),
            reason,
        };
        for (reason, word) in [
            (Conflict::Running, "running"),
            (Conflict::Stopped, "stopped"),
            (Conflict::Leaving, "leaving"),
            (Conflict::Busy(Operation::Reload), "busy"),
        ] {
            assert_eq!(mapped(conflict(reason)), (409, "conflict", Some(word.into())));
        }
        let no_workers = E::NoWorkers { pool: "web".into() };
        assert_eq!(mapped(no_workers), (409, "conflict", Some("no-workers".into())));
        assert_eq!(mapped(E::InvalidArgument("0".into())), (400, "bad_request", None));
        let failed = E::StartFailed {
            worker: "web:01".into(),
            reason: StartFailure::Spawn("ENOENT".into()),
        };
        assert_eq!(mapped(failed), (500, "start_failed", None));
        assert_eq!(mapped(E::ShuttingDown), (503, "unavailable", None));
        assert_eq!(mapped(E::Deadline), (500, "internal", None));
    }

    #[test]
    fn a_busy_conflict_says_what_is_under_way() {
        let e = E::Conflict {
            operation: Operation::Restart,
            target: "web".into(),
            reason: Conflict::Busy(Operation::Reload),
        };
        assert_eq!(
            ApiError::from(e).message,
            "cannot restart web: a reload is under way"
        );
    }
}
