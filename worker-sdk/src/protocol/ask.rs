//! Version 4: questions a worker asks the supervisor and their answers
//! (`FromWorker::Ask` → `ToWorker::Answer`), and the `Exit` order a worker
//! may be given (section 13 of `PROTOCOL.md`).

use serde::{Deserialize, Serialize};

/// What a worker asks the supervisor ([`FromWorker::Ask`](super::FromWorker::Ask)).
/// Every question gets exactly one [`ToWorker::Answer`](super::ToWorker::Answer)
/// with the same `id`, unless the link closes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Question {
    /// An event for the supervisor's handler of `event`; the answer is the
    /// handler's (load-process-manager's `emit(event, payload, callback)`).
    Event {
        /// Event name.
        event: String,
        /// Event payload (MessagePack from the Rust API).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Stop another cluster member: it is sent [`ToWorker::Exit`](super::ToWorker::Exit)
    /// with `code` (clustr-node's `emitKill`). Aimed at the supervisor's
    /// own pid, a soft kill of the whole cluster. Answered `nil`.
    Kill {
        /// Which member.
        target: Target,
        /// The exit code the target is to exit with.
        code: i32,
    },
    /// Add `count` workers to `pool` (clustr-node's `spawn`). Answered,
    /// once they are ready, with a list of [`SpawnedWorker`]. There is no
    /// program to name: they run the pool's spec, so no worker can make the
    /// supervisor exec a binary of its choosing.
    Spawn {
        /// The pool to grow.
        pool: String,
        /// How many workers.
        count: u32,
        /// `false`: a clean exit (code 0) of one of them leaves its slot
        /// empty; a failure still refills it.
        respawn: bool,
        /// Arguments for them, after the pool's (each must start with one
        /// of the prefixes the pool allows). Absent means none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// The CPUs to pin them to (and their replacements), within the
        /// pool's own set (its `cpu_affinity`, else the supervisor's CPUs).
        /// Absent means the pool's placement.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpus: Option<Vec<usize>>,
    },
    /// A make-before-break restart of the asking worker. Answered `nil`
    /// once the restart is under way (its successor is starting).
    RestartMe,
}

/// A cluster member, as a [`Question::Kill`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// By process id (a worker's, or the supervisor's own).
    Pid(u32),
    /// By worker id ([`ENV_WORKER_ID`](super::ENV_WORKER_ID)).
    Id(u64),
    /// By worker name (`pool:NN`).
    Name(String),
}

/// One worker started by a [`Question::Spawn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnedWorker {
    /// Its worker id.
    pub id: u64,
    /// Its name (`pool:NN`).
    pub name: String,
}

/// The `kind` of an [`Answer`](super::ToWorker::Answer)'s error outcome.
pub mod ask_kind {
    /// No handler is registered for the event.
    pub const NO_HANDLER: &str = "no-handler";
    /// The supervisor's handler returned an error.
    pub const HANDLER: &str = "handler";
    /// The supervisor's handler panicked.
    pub const PANIC: &str = "panic";
    /// The pool's settings do not allow it (kill, spawn, cluster shutdown).
    pub const REFUSED: &str = "refused";
    /// The kill's target is not a member of this cluster.
    pub const NOT_A_MEMBER: &str = "not-a-member";
    /// The asking worker has too many questions in flight.
    pub const BUSY: &str = "busy";
    /// The target worker does not understand `Exit` (no `exit` capability).
    pub const UNSUPPORTED: &str = "unsupported";
    /// The operation was admitted and failed (a spawn that did not start, a
    /// conflicting management call, an answer too large for a frame).
    pub const FAILED: &str = "failed";
}

#[cfg(test)]
mod tests {
    use super::super::{FromWorker, ToWorker};
    use super::*;

    #[test]
    fn questions_and_exits_are_externally_tagged_maps() {
        // Pinned for PROTOCOL.md: {"Ask": {id, question: {"Kill": {target: {"Pid": 9}, code: 3}}}}.
        let ask = FromWorker::Ask {
            id: 1,
            question: Question::Kill {
                target: Target::Pid(9),
                code: 3,
            },
        };
        let bytes = rmp_serde::to_vec_named(&ask).unwrap();
        assert_eq!(&bytes[..5], b"\x81\xa3Ask");
        let back: FromWorker = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, ask);
        let restart = rmp_serde::to_vec_named(&Question::RestartMe).unwrap();
        assert_eq!(restart, b"\xa9RestartMe");
        let exit = rmp_serde::to_vec_named(&ToWorker::Exit { code: 0 }).unwrap();
        assert_eq!(exit, b"\x81\xa4Exit\x81\xa4code\x00");
    }

    #[test]
    fn a_spawn_without_cpus_decodes_as_before_and_cpus_round_trip() {
        // The encoding before `cpus` existed.
        #[derive(Serialize)]
        enum Older {
            Spawn {
                pool: String,
                count: u32,
                respawn: bool,
                args: Vec<String>,
            },
        }
        let older = Older::Spawn {
            pool: "jobs".into(),
            count: 2,
            respawn: false,
            args: vec!["--shard=1".into()],
        };
        let bytes = rmp_serde::to_vec_named(&older).unwrap();
        let spawn = Question::Spawn {
            pool: "jobs".into(),
            count: 2,
            respawn: false,
            args: vec!["--shard=1".into()],
            cpus: None,
        };
        assert_eq!(rmp_serde::from_slice::<Question>(&bytes).unwrap(), spawn);
        assert_eq!(rmp_serde::to_vec_named(&spawn).unwrap(), bytes, "absent, not nil");
        let pinned = Question::Spawn {
            pool: "jobs".into(),
            count: 1,
            respawn: true,
            args: Vec::new(),
            cpus: Some(vec![1]),
        };
        let bytes = rmp_serde::to_vec_named(&pinned).unwrap();
        assert_eq!(rmp_serde::from_slice::<Question>(&bytes).unwrap(), pinned);
    }
}
