//! How a worker starts: the environment it inherits, the protocol versions
//! and capabilities, and the two hellos that open a connection.

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks, sent in both hellos. See
/// `PROTOCOL.md`, "Versions", for what each side does with another one.
pub const PROTOCOL_VERSION: u32 = 4;

/// The oldest worker protocol version a supervisor built with this crate
/// accepts. A supervisor accepts a worker whose hello says a version in
/// `MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION` and refuses any other (a
/// protocol error naming both); a worker accepts a supervisor whose hello's
/// `min_version..=version` holds its own version.
pub const MIN_PROTOCOL_VERSION: u32 = 2;

/// Capability name: the worker takes attachments and may send response
/// streams on the fd channel (section 11 of `PROTOCOL.md`).
pub const CAP_FD_CHANNEL: &str = "fd-channel";

/// Capability name (version 3): the worker takes balanced connections on
/// the fd channel (kind [`FD_KIND_CONNECTION`](super::FD_KIND_CONNECTION))
/// and understands `Drain`. Needs [`CAP_FD_CHANNEL`].
pub const CAP_CONNECTIONS: &str = "connections";

/// Capability name (version 4): the worker takes messages from other
/// workers (`ToWorker::Message`) and may publish, confirm and query
/// (`FromWorker::Publish`, `Confirmed`, `Query`).
pub const CAP_MESSAGING: &str = "messaging";
/// Capability name (version 4): the worker understands `Exit { code }`
/// (it runs its soft-kill work, then exits with `code`). A kill aimed at a
/// worker without it is refused.
pub const CAP_EXIT: &str = "exit";

/// Broadcast event name the supervisor sends to the workers of a pool when
/// one of its listeners fails (payload: MessagePack of a map with
/// `listener` and `error`, both strings). It is restarted after
/// `server_restart_delay`.
pub const EVENT_LISTENER_FAILED: &str = "nanny.listener-failed";

/// What a worker declared it supports in its hello. The wire form is a list
/// of names ([`WorkerHello::capabilities`]), so that workers in any
/// language can declare them; names this crate does not know are ignored.
/// The supervisor never sends a worker a kind of message it did not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`CAP_FD_CHANNEL`]: attachments and response streams.
    pub fd_channel: bool,
    /// [`CAP_CONNECTIONS`]: balanced connections and `Drain`.
    pub connections: bool,
    /// [`CAP_MESSAGING`]: messages between workers and queries.
    pub messaging: bool,
    /// [`CAP_EXIT`]: `Exit { code }`.
    pub exit: bool,
}

impl Capabilities {
    /// Reads the capability names of a hello, ignoring unknown ones.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut caps = Self::default();
        for name in names {
            match name.as_ref() {
                CAP_FD_CHANNEL => caps.fd_channel = true,
                CAP_CONNECTIONS => caps.connections = true,
                CAP_MESSAGING => caps.messaging = true,
                CAP_EXIT => caps.exit = true,
                _ => {}
            }
        }
        caps
    }

    /// The names to put in a hello.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.fd_channel {
            names.push(CAP_FD_CHANNEL.to_owned());
        }
        if self.connections {
            names.push(CAP_CONNECTIONS.to_owned());
        }
        if self.messaging {
            names.push(CAP_MESSAGING.to_owned());
        }
        if self.exit {
            names.push(CAP_EXIT.to_owned());
        }
        names
    }
}

/// Environment variable: the inherited socket's file descriptor number.
pub const ENV_FD: &str = "NANNY_FD";
/// Environment variable: the worker's id, unique within one supervisor.
pub const ENV_WORKER_ID: &str = "NANNY_WORKER_ID";
/// Environment variable: the name of the worker's pool.
pub const ENV_POOL: &str = "NANNY_POOL";
/// Environment variable: the supervisor's process id.
pub const ENV_SUPERVISOR_PID: &str = "NANNY_SUPERVISOR_PID";
/// Environment variable: the worker's stable name, its pool and slot
/// number (`api:01`; a replacement keeps its predecessor's). Optional: a
/// supervisor before it does not set it.
pub const ENV_WORKER_NAME: &str = "NANNY_WORKER_NAME";
/// Environment variable: the worker's process title, the `argv[0]` it was
/// exec'd with (`myapp api:01`); set only when the supervisor has one.
pub const ENV_PROCESS_TITLE: &str = "NANNY_PROCESS_TITLE";
/// Environment variable: the worker's logical id (its slot in the pool; a
/// replacement keeps its predecessor's).
pub const ENV_LOGICAL_ID: &str = "PROCESS_LOGICAL_ID";
/// Environment variable: the heartbeat interval in milliseconds.
pub const ENV_PULSE_MS: &str = "NANNY_PULSE_MS";
/// Environment variable: [`SupervisorHello::unhealthy_timeout_ms`], set
/// only when the pool has one.
pub const ENV_UNHEALTHY_TIMEOUT_MS: &str = "NANNY_UNHEALTHY_TIMEOUT_MS";
/// Environment variable: the maximum frame body length in bytes.
pub const ENV_MAX_FRAME_LEN: &str = "NANNY_MAX_FRAME_LEN";
/// Optional: the supervisor runs in its low-latency mode and asks its
/// workers to spin this many microseconds after each frame before they
/// park ([`crate::spin`]); a worker may ignore it.
pub const ENV_SPIN_US: &str = "NANNY_SPIN_US";
/// Environment variable: the fd channel's file descriptor number (a
/// `SOCK_SEQPACKET` Unix socket; one fd per message, see
/// [`FdTag`](super::FdTag)).
pub const ENV_FD_CHANNEL: &str = "NANNY_FD_CHANNEL";

/// The supervisor's hello, the first frame it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorHello {
    /// [`PROTOCOL_VERSION`] of the supervisor: the newest it speaks.
    pub version: u32,
    /// The oldest worker version it accepts ([`MIN_PROTOCOL_VERSION`]);
    /// absent (a version-1 supervisor) means `version` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<u32>,
    /// The worker's id (same as [`ENV_WORKER_ID`]).
    pub worker_id: u64,
    /// Heartbeat interval in milliseconds.
    pub pulse_ms: u64,
    /// Largest frame body either side may send.
    pub max_frame_len: u32,
    /// How long the supervisor waits for a heartbeat, once the worker said
    /// `Ready`, before it stops the worker as stalled; absent: it never
    /// does. Heartbeats are mandatory when it is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_timeout_ms: Option<u64>,
}

/// The worker's hello, the first frame it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    /// [`PROTOCOL_VERSION`] of the worker.
    pub version: u32,
    /// The worker's process id as the host sees it (the name of
    /// `/proc/self`: inside its own PID namespace `getpid()` is 2). The
    /// supervisor warns when it is not the process it started (a wrapper
    /// that forks the real worker instead of `exec`ing it).
    pub pid: u32,
    /// Free-form name and version of the worker library, for diagnostics.
    pub agent: String,
    /// What the worker supports, by name ([`Capabilities::names`]; e.g.
    /// [`CAP_FD_CHANNEL`]). Unknown names are ignored; absent means none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_by_name_and_ignore_unknown_ones() {
        let caps = Capabilities::from_names(&["later-thing", CAP_FD_CHANNEL]);
        assert!(caps.fd_channel);
        assert_eq!(caps.names(), vec![CAP_FD_CHANNEL.to_owned()]);
        assert_eq!(Capabilities::from_names::<&str>(&[]), Capabilities::default());
    }
}
