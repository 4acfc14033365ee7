//! The supervisor's internal names for requests and their attempts.

use std::fmt;

use uuid::Uuid;

/// A request: the UUID v4 the caller sees as [`Response::id`](crate::Response::id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestId(pub(crate) Uuid);

impl RequestId {
    /// A fresh random id.
    pub(crate) fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One attempt of a request: what frames, descriptors and timers name.
/// Attempts count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AttemptKey {
    pub(crate) id: RequestId,
    pub(crate) attempt: u32,
}
