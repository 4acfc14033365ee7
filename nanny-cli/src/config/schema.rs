//! The file's shape: `[supervisor]`, `[[pool]]` and `[[listener]]` tables,
//! with the names of the library's builder methods (README.md,
//! "Configuration reference"). Unknown keys are errors. What a key does is
//! documented on the library's method of the same name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::limits::{Account, Rlimits};
use super::units::{Bytes, OptSpan, Span};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// Settings of the supervisor, and the defaults of every pool.
    #[serde(default)]
    pub(crate) supervisor: SupervisorConfig,
    /// The pools, in order: the first is the listeners' default.
    #[serde(default)]
    pub(crate) pool: Vec<Spanned<PoolConfig>>,
    /// The sockets the supervisor owns.
    #[serde(default)]
    pub(crate) listener: Vec<Spanned<ListenerConfig>>,
    /// The REST API.
    #[serde(default)]
    pub(crate) api: ApiConfig,
    /// The request queue shared with other hosts, if any.
    pub(crate) queue: Option<Spanned<QueueConfig>>,
}

/// `[queue]`: one request queue per pool on Redis Streams, shared with the
/// other hosts that name the same Redis and namespace
/// (`nanny::RedisQueue`). Exactly one of `url` and `url_env`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueConfig {
    /// The Redis URL (`redis://[user:password@]host[:port][/db]`,
    /// `redis+unix:///path`).
    pub(crate) url: Option<String>,
    /// The environment variable that holds the URL: credentials stay out of
    /// the file.
    pub(crate) url_env: Option<String>,
    /// The keys' namespace: every host of one deployment names the same.
    pub(crate) namespace: String,
    /// This host's name; default the machine's hostname.
    pub(crate) host: Option<String>,
    pub(crate) heartbeat: Option<Span>,
    pub(crate) min_idle: Option<Span>,
    pub(crate) janitor: Option<Span>,
    pub(crate) block: Option<Span>,
    pub(crate) reply_ttl: Option<Span>,
    /// A PEM file of the certificate authorities to trust for `rediss://`
    /// (relative to the file's directory); default: the system's roots.
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// Below this much available memory the host takes no work.
    pub(crate) min_available_memory: Option<Bytes>,
}

impl std::fmt::Debug for QueueConfig {
    // Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConfig")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("url_env", &self.url_env)
            .field("namespace", &self.namespace)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// `[api]`: the REST API's switch, address, token and state directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiConfig {
    /// Default `true`.
    pub(crate) enabled: Option<bool>,
    /// Default `127.0.0.1:8887`.
    pub(crate) listen: Option<SocketAddr>,
    /// A file holding the token; default: generated at start.
    pub(crate) token_file: Option<PathBuf>,
    /// Where `token` and `api.json` are written; default `.nanny` beside
    /// the config file.
    pub(crate) state_dir: Option<PathBuf>,
}

/// `[supervisor]`: the builder's settings. The per-pool ones set here are
/// every pool's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupervisorConfig {
    pub(crate) pulse: Option<Span>,
    pub(crate) max_queue: Option<usize>,
    pub(crate) request_timeout: Option<Span>,
    pub(crate) retries: Option<RetriesConfig>,
    pub(crate) max_frame_len: Option<Bytes>,
    pub(crate) health_events: Option<u32>,
    pub(crate) event_capacity: Option<usize>,
    pub(crate) server_restart_delay: Option<Span>,
    pub(crate) process_title: Option<String>,
    pub(crate) allow_worker_shutdown: Option<bool>,
    pub(crate) contain_descendants: Option<bool>,
    /// `nanny-init`, relative to the file's directory.
    pub(crate) init_program: Option<PathBuf>,
    // `silent` pools' log files (every pool's default; see `LogKeys`).
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) log_max_size: Option<Bytes>,
    pub(crate) log_max_total: Option<Bytes>,
    // The per-pool settings (kept in step with `PoolConfig`'s: one struct
    // `#[serde(flatten)]`ed into both would lose `deny_unknown_fields`,
    // which serde does not support together with flatten).
    pub(crate) start_timeout: Option<Span>,
    pub(crate) drain_timeout: Option<OptSpan>,
    pub(crate) force_stop_delay: Option<OptSpan>,
    pub(crate) restart_delay: Option<Span>,
    pub(crate) restart_backoff: Option<Span>,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_window: Option<Span>,
    pub(crate) unhealthy_timeout: Option<OptSpan>,
    pub(crate) reload_delay: Option<Span>,
    pub(crate) max_rss: Option<Bytes>,
}

/// `retries = 3` or `retries = "unlimited"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged, expecting = "a number of retries, or \"unlimited\"")]
pub(crate) enum RetriesConfig {
    /// At most this many.
    Limited(u32),
    /// The word `"unlimited"`.
    Word(Unlimited),
}

/// The only word `retries` takes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unlimited {
    /// Retry without limit.
    Unlimited,
}

/// One `[[pool]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolConfig {
    /// Default `"default"` (`nanny::DEFAULT_POOL`).
    pub(crate) name: Option<String>,
    /// A path (relative ones with a `/` are from the file's directory) or a
    /// name looked up in `PATH`.
    pub(crate) command: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    pub(crate) cwd: Option<PathBuf>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) env_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) plain: bool,
    /// How its workers take descriptors: `"seqpacket"` (default) or
    /// `"node"` (`nanny::FdChannelFlavor`).
    pub(crate) fd_channel: Option<nanny::FdChannelFlavor>,
    /// Run as this user (a name or a uid).
    pub(crate) user: Option<Account>,
    /// With this group (a name or a gid).
    pub(crate) group: Option<Account>,
    /// Resource limits (see [`super::limits`]).
    #[serde(default)]
    pub(crate) rlimits: Rlimits,
    pub(crate) workers: Option<usize>,
    pub(crate) logical_ids: Option<Vec<u64>>,
    pub(crate) concurrency: Option<usize>,
    #[serde(default)]
    pub(crate) silent: bool,
    pub(crate) restart: Option<nanny::RestartPolicy>,
    pub(crate) respawn_count: Option<u32>,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_requests_jitter: Option<u64>,
    pub(crate) max_request_duration: Option<Span>,
    pub(crate) cpu_affinity: Option<Vec<usize>>,
    pub(crate) cpu_per_worker: Option<Vec<usize>>,
    pub(crate) readiness: Option<ReadinessConfig>,
    #[serde(default)]
    pub(crate) allow_kill: bool,
    pub(crate) allow_spawn: Option<usize>,
    #[serde(default)]
    pub(crate) allow_spawn_args: Vec<String>,
    /// Its output's encoding (default UTF-8; see `crate::logs::decode`).
    pub(crate) encoding: Option<crate::logs::Decoder>,
    // Its log file (see `LogKeys`).
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) log_max_size: Option<Bytes>,
    pub(crate) log_max_total: Option<Bytes>,
    // The per-pool settings (kept in step with `SupervisorConfig`'s).
    pub(crate) start_timeout: Option<Span>,
    pub(crate) drain_timeout: Option<OptSpan>,
    pub(crate) force_stop_delay: Option<OptSpan>,
    pub(crate) restart_delay: Option<Span>,
    pub(crate) restart_backoff: Option<Span>,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_window: Option<Span>,
    pub(crate) unhealthy_timeout: Option<OptSpan>,
    pub(crate) reload_delay: Option<Span>,
    pub(crate) max_rss: Option<Bytes>,
}

/// `readiness = { tcp = "ADDR" }`, `{ http = { addr = "ADDR", path = "/" } }`
/// or `{ delay = "1s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum ReadinessConfig {
    /// A TCP connect succeeds.
    Tcp(SocketAddr),
    /// `GET path` answers 2xx.
    Http {
        /// Where to connect.
        addr: SocketAddr,
        /// What to get (default `/`).
        #[serde(default = "root")]
        path: String,
    },
    /// The worker stayed up this long.
    Delay(Span),
}

fn root() -> String {
    "/".to_owned()
}

/// One `[[listener]]`: exactly one of `tcp` and `unix`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerConfig {
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) unix: Option<PathBuf>,
    pub(crate) pool: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) backlog: Option<usize>,
    pub(crate) listen_backlog: Option<u32>,
    #[serde(default)]
    pub(crate) socket_activation: bool,
    #[serde(default)]
    pub(crate) sticky_by_peer_ip: bool,
}

/// The settings a pool takes from `[supervisor]` unless it sets its own.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Settings {
    pub(crate) start_timeout: Option<Span>,
    pub(crate) drain_timeout: Option<OptSpan>,
    pub(crate) force_stop_delay: Option<OptSpan>,
    pub(crate) restart_delay: Option<Span>,
    pub(crate) restart_backoff: Option<Span>,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_window: Option<Span>,
    pub(crate) unhealthy_timeout: Option<OptSpan>,
    pub(crate) reload_delay: Option<Span>,
    pub(crate) max_rss: Option<Bytes>,
}

macro_rules! settings_of {
    ($t:ty) => {
        impl $t {
            /// Its per-pool settings.
            pub(crate) fn settings(&self) -> Settings {
                Settings {
                    start_timeout: self.start_timeout,
                    drain_timeout: self.drain_timeout,
                    force_stop_delay: self.force_stop_delay,
                    restart_delay: self.restart_delay,
                    restart_backoff: self.restart_backoff,
                    max_restarts: self.max_restarts,
                    restart_window: self.restart_window,
                    unhealthy_timeout: self.unhealthy_timeout,
                    reload_delay: self.reload_delay,
                    max_rss: self.max_rss,
                }
            }
        }
    };
}

settings_of!(SupervisorConfig);
settings_of!(PoolConfig);

/// The log file keys of `[supervisor]` (every pool's default) and
/// `[[pool]]`: `nanny run`'s own, not the library's (see `crate::logs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogKeys {
    /// Default `logs` beside the config file.
    pub(crate) log_dir: Option<PathBuf>,
    /// Default 10 MiB.
    pub(crate) log_max_size: Option<Bytes>,
    /// Default 100 MiB.
    pub(crate) log_max_total: Option<Bytes>,
}

macro_rules! log_keys_of {
    ($t:ty) => {
        impl $t {
            /// Its log file keys.
            pub(crate) fn log_keys(&self) -> LogKeys {
                LogKeys {
                    log_dir: self.log_dir.clone(),
                    log_max_size: self.log_max_size,
                    log_max_total: self.log_max_total,
                }
            }
        }
    };
}

log_keys_of!(SupervisorConfig);
log_keys_of!(PoolConfig);
