//! Version 4, capability [`CAP_MESSAGING`](super::CAP_MESSAGING): messages
//! between workers (routed by the supervisor), confirmations, and the
//! queries a worker asks the supervisor (`cluster_info`, its own counters).

use serde::{Deserialize, Serialize};

/// Where a worker's message goes ([`FromWorker::Publish`](super::FromWorker::Publish)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recipients {
    /// Every other live worker that declared `messaging`.
    Public,
    /// Every other live worker of this pool (a worker's group is its pool).
    Group(String),
    /// One worker, by id or by its stable name (`api:01`); the sender
    /// itself may be named.
    Private(WorkerAddr),
    /// A confirmation: to every other live worker, counted by its
    /// `on_confirmation` listeners; the data is the identifier (a
    /// MessagePack string).
    Confirmation,
}

/// A worker named in a message: its id (`NANNY_WORKER_ID`, one process)
/// or its stable name (`pool:NN`, whichever process fills that slot now).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerAddr {
    /// A worker id.
    Id(u64),
    /// A slot's name, `pool:NN`.
    Name(String),
}

impl From<u64> for WorkerAddr {
    fn from(id: u64) -> Self {
        Self::Id(id)
    }
}

impl From<&str> for WorkerAddr {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for WorkerAddr {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl std::fmt::Display for WorkerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "w{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// How a message was addressed, as its recipient sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MessageKind {
    /// To every worker.
    Public,
    /// To the workers of one pool.
    Group,
    /// To this worker alone.
    Private,
    /// A confirmation (its data is the identifier).
    Confirmation,
}

/// Who sent a message (the seed's `meta`), filled in by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageMeta {
    /// The sender's worker id.
    pub id: u64,
    /// Its stable name, `pool:NN`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Its pool (its group).
    pub pool: String,
}

/// A worker's question to the supervisor ([`FromWorker::Query`](super::FromWorker::Query)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Query {
    /// The pools and their workers: answered with [`Answer::ClusterInfo`].
    ClusterInfo,
    /// The asking worker's own counters: answered with [`Answer::Stats`].
    Stats,
}

/// The supervisor's answer to a [`Query`] ([`ToWorker::QueryAnswer`](super::ToWorker::QueryAnswer)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Answer {
    /// To [`Query::ClusterInfo`].
    ClusterInfo(ClusterInfo),
    /// To [`Query::Stats`].
    Stats(WorkerCounters),
}

/// The cluster as the supervisor sees it: every pool, in configuration
/// order, with its live workers (the seed's `clusterInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The supervisor's process id.
    pub supervisor_pid: u32,
    /// Every pool.
    pub pools: Vec<PoolMembers>,
}

impl ClusterInfo {
    /// The pool named `name`, if any.
    pub fn pool(&self, name: &str) -> Option<&PoolMembers> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// One pool in a [`ClusterInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMembers {
    /// The pool's name.
    pub name: String,
    /// Its live worker processes (any state but reaped), by id.
    pub workers: Vec<Member>,
}

/// One worker in a [`PoolMembers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its worker id.
    pub id: u64,
    /// Its stable name, `pool:NN`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// One worker's counters (the seed's `stats`), kept by the supervisor,
/// which sees every message pass: in `WorkerHealth::counters` (and so in
/// `inspect()`), and read by the worker itself with `Worker::stats()`.
/// `Supervisor::reset_stats` sets them all back to zero.
///
/// A message is *received* when it is queued for its recipient; of those,
/// `dropped` counts the ones its full mailbox dropped before they were
/// written (drop-oldest; see `PROTOCOL.md`, section 14).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerCounters {
    /// Public messages it sent (`emitPublic`).
    pub public_sent: u64,
    /// Group messages it sent (`emitGroup`).
    pub group_sent: u64,
    /// Private messages it sent (`emitPrivate`), delivered or not.
    pub private_sent: u64,
    /// Confirmations it sent (`emitConfirmation`).
    pub confirmations_sent: u64,
    /// Messages it sent that the supervisor dropped for want of a
    /// recipient: a private message to no live worker that takes messages,
    /// a group message naming no pool, a message too large for a frame
    /// once its meta is added.
    pub undelivered: u64,
    /// Public messages it received (`onPublic`).
    pub public_received: u64,
    /// Group messages it received (`onGroup`).
    pub group_received: u64,
    /// Private messages it received (`onPrivate`).
    pub private_received: u64,
    /// Confirmations it received (`receivedConfirmations`).
    pub confirmations_received: u64,
    /// Its `on_confirmation` listeners that fired (`successfulConfirmations`).
    pub confirmations_completed: u64,
    /// Messages for it dropped because its mailbox was full (it was not
    /// reading fast enough).
    pub dropped: u64,
    /// Workers it asked the supervisor to stop (`emitKill`).
    pub kills: u64,
    /// Workers it asked the supervisor to spawn (`spawnChildProcess`).
    pub spawns: u64,
    /// Times its slot was refilled after an unexpected exit, up to its own
    /// start (`respawnChildProcess`, from the slot's side).
    pub respawns: u64,
}

impl WorkerCounters {
    /// Counts one message sent to `to`.
    pub fn count_sent(&mut self, to: &Recipients) {
        match to {
            Recipients::Public => self.public_sent += 1,
            Recipients::Group(_) => self.group_sent += 1,
            Recipients::Private(_) => self.private_sent += 1,
            Recipients::Confirmation => self.confirmations_sent += 1,
        }
    }

    /// Counts one message of `kind` received.
    pub fn count_received(&mut self, kind: MessageKind) {
        match kind {
            MessageKind::Public => self.public_received += 1,
            MessageKind::Group => self.group_received += 1,
            MessageKind::Private => self.private_received += 1,
            MessageKind::Confirmation => self.confirmations_received += 1,
        }
    }

    /// Every message it sent, of any kind.
    pub fn sent(&self) -> u64 {
        self.public_sent + self.group_sent + self.private_sent + self.confirmations_sent
    }

    /// Every message it received, of any kind (`onMessage`).
    pub fn received(&self) -> u64 {
        self.public_received + self.group_received + self.private_received + self.confirmations_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FromWorker, ToWorker};

    fn bytes<T: Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap()
    }

    #[test]
    fn wire_shapes_are_those_of_protocol_md() {
        let private = FromWorker::Publish {
            to: Recipients::Private(WorkerAddr::Id(7)),
            data: vec![],
        };
        assert_eq!(
            bytes(&private),
            b"\x81\xa7Publish\x82\xa2to\x81\xa7Private\x81\xa2Id\x07\xa4data\xc4\x00"
        );
        let public = FromWorker::Publish {
            to: Recipients::Public,
            data: vec![],
        };
        assert_eq!(
            bytes(&public),
            b"\x81\xa7Publish\x82\xa2to\xa6Public\xa4data\xc4\x00"
        );
        let query = FromWorker::Query {
            id: 3,
            query: Query::Stats,
        };
        assert_eq!(bytes(&query), b"\x81\xa5Query\x82\xa2id\x03\xa5query\xa5Stats");
        let message = ToWorker::Message {
            kind: MessageKind::Confirmation,
            meta: MessageMeta {
                id: 1,
                name: "a:01".into(),
                pid: 2,
                pool: "a".into(),
            },
            data: vec![],
        };
        let kind = b"\xa4kind\xacconfirmation";
        assert!(bytes(&message).windows(kind.len()).any(|w| w == kind));
    }
}
