//! [`WorkerRef`]: a worker named by its id or by its stable name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::WorkerId;

/// A worker, by id (`WorkerId`, never reused: one process) or by its
/// stable name (`api:01`: a pool's slot, whichever process fills it now).
///
/// Every method that takes a worker takes `impl Into<WorkerRef>`, so either
/// works:
///
/// ```no_run
/// # async fn f(sup: nanny::Supervisor, id: nanny::WorkerId) -> Result<(), nanny::Error> {
/// sup.restart_worker("api:01").await?;
/// sup.signal(id, nanny::Signal::SIGUSR2).await?;
/// # Ok(()) }
/// ```
///
/// It parses from text too (a CLI's argument): `w7` or `7` is an id,
/// `pool:NN` a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkerRef {
    /// One worker process.
    Id(WorkerId),
    /// A slot's stable name, `pool:NN`.
    Name(String),
}

impl From<WorkerId> for WorkerRef {
    fn from(id: WorkerId) -> Self {
        Self::Id(id)
    }
}

impl From<&WorkerId> for WorkerRef {
    fn from(id: &WorkerId) -> Self {
        Self::Id(*id)
    }
}

impl From<&str> for WorkerRef {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for WorkerRef {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl From<&String> for WorkerRef {
    fn from(name: &String) -> Self {
        Self::Name(name.clone())
    }
}

impl fmt::Display for WorkerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Text that names no worker: neither an id (`w7`, `7`) nor a name
/// (`pool:NN`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a worker id (w7) nor a worker name (pool:01)")]
pub struct ParseWorkerRefError(String);

impl FromStr for WorkerRef {
    type Err = ParseWorkerRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('w').unwrap_or(s);
        if let Ok(n) = digits.parse::<u64>() {
            if !digits.starts_with('+') {
                return Ok(Self::Id(WorkerId(n)));
            }
        }
        if crate::supervisor::parse_name(s).is_some() {
            return Ok(Self::Name(s.to_owned()));
        }
        Err(ParseWorkerRefError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_names() {
        assert_eq!("w7".parse(), Ok(WorkerRef::Id(WorkerId(7))));
        assert_eq!("7".parse(), Ok(WorkerRef::Id(WorkerId(7))));
        assert_eq!("api:01".parse(), Ok(WorkerRef::Name("api:01".into())));
        for bad in ["", "w", "api", "api:x", "+7", "w+7"] {
            assert!(bad.parse::<WorkerRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_as_given() {
        assert_eq!(WorkerRef::from(WorkerId(3)).to_string(), "w3");
        assert_eq!(WorkerRef::from("api:02").to_string(), "api:02");
    }

    #[test]
    fn serializes_untagged() {
        let id = serde_json::to_string(&WorkerRef::Id(WorkerId(3))).unwrap();
        let name = serde_json::to_string(&WorkerRef::from("api:02")).unwrap();
        assert_eq!((id.as_str(), name.as_str()), ("3", "\"api:02\""));
    }
}
