//! What the test worker's messaging reports (see `tests/bin/test_worker/messages.rs`):
//! where [`Cmd::Publish`](super::cmd::Cmd::Publish) sends, and what a worker
//! received. Shared by `#[path]` like `cmd.rs`.
#![allow(dead_code)] // each side uses its half

use serde::{Deserialize, Serialize};

/// Where [`Cmd::Publish`] sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum To {
    /// `publish_public`.
    Public,
    /// `publish_group(pool)`.
    Group(String),
    /// `publish_private(name)`.
    Name(String),
    /// `publish_private(id)`.
    Id(u64),
}

/// The data of the messages [`Cmd::Publish`] sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Numbered {
    /// Its number.
    pub(crate) n: u64,
    /// Padding.
    #[serde(with = "serde_bytes")]
    pub(crate) pad: Vec<u8>,
}

/// One message a worker received, as it saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Got {
    /// `"public"`, `"group"` or `"private"` (the handler that got it).
    pub(crate) handler: String,
    /// The meta's sender id, name, pid and pool.
    pub(crate) from: u64,
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) pool: String,
    /// Its [`Numbered::n`].
    pub(crate) n: u64,
}

/// One firing of a confirmation listener ([`Cmd::ListenConfirmations`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fired {
    /// The identifier.
    pub(crate) identifier: String,
    /// The ids of the confirming workers, in arrival order.
    pub(crate) from: Vec<u64>,
}

/// What a worker emits ([`REPORTED`]) on a [`REPORT`] broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The broadcast's nonce.
    pub(crate) nonce: String,
    /// `NANNY_WORKER_ID`.
    pub(crate) worker_id: u64,
    /// Every message received so far, in arrival order.
    pub(crate) got: Vec<Got>,
    /// Every confirmation firing so far.
    pub(crate) fired: Vec<Fired>,
}

/// On this broadcast (payload: a `String` nonce) every worker emits
/// [`REPORTED`] with its [`Report`].
pub(crate) const REPORT: &str = "report";
/// The custom event a worker emits in reply to [`REPORT`].
pub(crate) const REPORTED: &str = "reported";
