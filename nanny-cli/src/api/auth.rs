//! The API's bearer token: where it comes from, and the check every
//! authenticated route goes through.
//!
//! In order: the `NANNY_API_TOKEN` environment variable (taken out of the
//! environment at once, so no worker inherits it), the `[api] token_file`
//! the config names, or else 32 random bytes from the OS, hex-encoded and
//! written to `<state_dir>/token`, readable only by nanny's user (0600).
//! The token is compared in constant time, never logged, and never passed to
//! a worker.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiError;

/// The environment variable a token may come in.
pub(crate) const TOKEN_ENV: &str = "NANNY_API_TOKEN";

/// The API's secret. Its `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct Token(Arc<str>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `NANNY_API_TOKEN`.
    Environment,
    /// A file: the configured one, or the generated one nanny wrote.
    File(PathBuf),
}

impl Token {
    /// Whether `candidate` is the token, in time independent of where the
    /// two first differ.
    pub(crate) fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate))
    }

    /// The token's text, to send it (the CLI and the tests).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// A token from text, trimmed; `None` if empty.
    pub(crate) fn from_text(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Self(text.into()))
    }

    /// A fresh token: 32 bytes from the OS, as 64 hex digits.
    pub(crate) fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(hex.into()))
    }
}

/// Takes the token from the environment (removing it there), from
/// `token_file`, or generates one and writes it to `<state_dir>/token`.
/// `upgrade`: this nanny replaces a running one, whose generated token in
/// `<state_dir>/token` is kept rather than replaced (the old nanny serves
/// on with it if the upgrade fails). Call it before any thread or worker
/// is started: it edits the process's environment.
pub(crate) fn resolve(
    token_file: Option<&Path>,
    state_dir: &Path,
    upgrade: bool,
) -> Result<(Token, Origin), String> {
    if let Some(value) = std::env::var_os(TOKEN_ENV) {
        std::env::remove_var(TOKEN_ENV);
        let text = value
            .to_str()
            .ok_or_else(|| format!("{TOKEN_ENV} is not UTF-8"))?;
        let token = Token::from_text(text).ok_or_else(|| format!("{TOKEN_ENV} is empty"))?;
        return Ok((token, Origin::Environment));
    }
    if let Some(path) = token_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("[api] token_file {}: {e}", path.display()))?;
        let token =
            Token::from_text(&text).ok_or_else(|| format!("[api] token_file {}: empty", path.display()))?;
        return Ok((token, Origin::File(path.to_owned())));
    }
    let path = state_dir.join("token");
    if upgrade {
        if let Some(token) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Token::from_text(&t))
        {
            return Ok((token, Origin::File(path)));
        }
    }
    let token = Token::generate().map_err(|e| format!("cannot generate the API token: {e}"))?;
    super::discovery::write_private(&path, token.expose().as_bytes())
        .map_err(|e| format!("cannot write the API token to {}: {e}", path.display()))?;
    Ok((token, Origin::File(path)))
}

/// The middleware of every authenticated route: 401 and nothing else
/// happens unless the request carries `Authorization: Bearer <token>`.
pub(crate) async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(candidate) if token.matches(candidate) => next.run(request).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_64_hex_digits_and_differ() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::from_text(" secret\n").unwrap();
        assert!(t.matches(b"secret"));
        assert!(!t.matches(b"secreT"));
        assert!(!t.matches(b"secret2"));
        assert!(!t.matches(b""));
        assert!(Token::from_text("  \n").is_none());
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
