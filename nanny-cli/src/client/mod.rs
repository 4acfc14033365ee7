//! The CLI verbs' side of the REST API: finding it ([`find`]), calling it
//! with the token ([`Client`]), and turning what went wrong into a
//! [`CliError`] whose [`code`](CliError::code) scripts can test. The status
//! table is in [`table`].
//!
//! Exit codes (README.md, "The `nanny` command"): 0 ok, 1 the operation
//! failed or conflicted, 2 a usage error (clap's), 3 an unknown worker or
//! pool, 69 no API to talk to, 75 no answer in time (`--timeout`), 77 the
//! token was refused.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

pub(crate) mod find;
pub(crate) mod table;

pub(crate) use find::{Target, Where};

/// How long connecting to the API may take (it is local, normally).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read (`GET` of JSON) waits for its whole answer without
/// `--timeout`.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest JSON answer read (a status of thousands of workers fits).
const MAX_BODY: u64 = 16 << 20;

/// Why a verb failed; each kind is an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
    /// The API refused or failed the operation (409 with its reason, 400,
    /// 5xx): exit 1.
    Failed(String),
    /// No such worker or pool (404): exit 3.
    NotFound(String),
    /// No API to talk to: no `api.json`, or nothing listening: exit 69.
    Unreachable(String),
    /// No answer within the timeout; the operation may still be under way:
    /// exit 75 (`EX_TEMPFAIL`).
    TimedOut(String),
    /// The token was refused (401): exit 77.
    Refused(String),
}

impl CliError {
    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::NotFound(_) => 3,
            Self::Unreachable(_) => 69,
            Self::TimedOut(_) => 75,
            Self::Refused(_) => 77,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(m)
            | Self::NotFound(m)
            | Self::Unreachable(m)
            | Self::TimedOut(m)
            | Self::Refused(m) => f.write_str(m),
        }
    }
}

/// A connection to one API, with its token.
#[derive(Debug)]
pub(crate) struct Client {
    target: Target,
    agent: ureq::Agent,
    /// `--timeout`.
    timeout: Option<Duration>,
}

impl Client {
    /// A client of the API that `w` finds.
    pub(crate) fn new(w: &Where) -> Result<Self, CliError> {
        let target = find::target(w)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .build()
            .into();
        let timeout = w.timeout.map(Duration::from_secs);
        Ok(Self {
            target,
            agent,
            timeout,
        })
    }

    /// `GET path` (with its query), the JSON answer, within `--timeout`
    /// or [`READ_TIMEOUT`].
    pub(crate) fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, CliError> {
        let bound = self.timeout.unwrap_or(READ_TIMEOUT);
        let request = self.get_request(path, query).config().timeout_global(Some(bound));
        let response = request.build().call().map_err(|e| self.no_answer(&e))?;
        self.json_of(check(response)?)
    }

    /// `GET path`, the response as it comes (for streams), once it is 2xx;
    /// `--timeout` bounds the wait for its headers only.
    pub(crate) fn get_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let request = (self.get_request(path, query).config())
            .timeout_recv_response(self.timeout)
            .build();
        let response = request.call().map_err(|e| self.no_answer(&e))?;
        check(response)
    }

    /// `POST path` with `body` as JSON, the JSON answer, within `--timeout`
    /// if given.
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let response = (self.agent.post(self.url(path)))
            .header("Authorization", self.bearer())
            .config()
            .timeout_global(self.timeout)
            .build()
            .send_json(body)
            .map_err(|e| self.no_answer(&e))?;
        self.json_of(check(response)?)
    }

    /// `GET path?query` with the token.
    fn get_request(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut request = (self.agent.get(self.url(path))).header("Authorization", self.bearer());
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        request
    }

    /// The API's URL (no token in it).
    pub(crate) fn url_base(&self) -> &str {
        &self.target.url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.target.token)
    }

    /// A request that got no answer: timed out, or nothing to talk to.
    fn no_answer(&self, e: &ureq::Error) -> CliError {
        if let ureq::Error::Timeout(_) = e {
            return self.timed_out();
        }
        if let Some(stale) = self.target.found.as_ref().and_then(find::Found::stale) {
            return CliError::Unreachable(stale);
        }
        CliError::Unreachable(format!(
            "no answer from the nanny API at {}: {e} (is `nanny run` running?)",
            self.target.url
        ))
    }

    fn timed_out(&self) -> CliError {
        CliError::TimedOut(format!(
            "the nanny API at {} did not answer in time (--timeout); what was asked may still be under way",
            self.target.url
        ))
    }

    /// The JSON body of a 2xx response (a read cut by the timeout is
    /// [`CliError::TimedOut`] too).
    fn json_of(&self, mut response: ureq::http::Response<ureq::Body>) -> Result<Value, CliError> {
        (response.body_mut().with_config().limit(MAX_BODY))
            .read_json()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => self.timed_out(),
                e => CliError::Failed(format!("the API's answer is not the JSON expected: {e}")),
            })
    }
}

/// The response if it is 2xx, else its typed error.
fn check(
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, CliError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let mut text = String::new();
    let _ = (response.body_mut().as_reader().take(64 << 10)).read_to_string(&mut text);
    Err(error_of(status, &text))
}

/// The typed error for an API answer `status` with `body`
/// (`{"error": {"code", "message", "reason"?}}`).
pub(crate) fn error_of(status: u16, body: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let message = error
        .and_then(|e| e["message"].as_str())
        .map_or_else(|| format!("the API answered {status}"), str::to_owned);
    let reason = error.and_then(|e| e["reason"].as_str());
    match status {
        401 => CliError::Refused(format!(
            "the API refused the token ({message}); check --token-file or {}",
            find::TOKEN_ENV
        )),
        404 => CliError::NotFound(message),
        _ => CliError::Failed(match reason {
            Some(r) => format!("{message} ({r})"),
            None => message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_become_exit_codes_with_their_message() {
        let e = error_of(
            404,
            r#"{"error":{"code":"unknown_worker","message":"no worker web:09"}}"#,
        );
        assert_eq!(e, CliError::NotFound("no worker web:09".into()));
        assert_eq!(e.code(), 3);
        let e = error_of(
            409,
            r#"{"error":{"code":"conflict","message":"cannot start","reason":"running"}}"#,
        );
        assert_eq!(e, CliError::Failed("cannot start (running)".into()));
        assert_eq!(e.code(), 1);
        let e = error_of(401, r#"{"error":{"code":"unauthorized","message":"bad token"}}"#);
        assert_eq!(e.code(), 77);
        assert!(e.to_string().contains("bad token"), "{e}");
        assert_eq!(error_of(502, "<html>").to_string(), "the API answered 502");
        assert_eq!(CliError::Unreachable("x".into()).code(), 69);
        assert_eq!(CliError::TimedOut("x".into()).code(), 75);
    }
}
