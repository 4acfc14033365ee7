//! nanny's integration tests: real worker processes (the
//! `nanny-test-worker` fixture), real signals, one module per behaviour.
//!
//! Rules every test keeps: no timing assertions (states and counts only);
//! conditions are polled with a deadline ([`support::wait_until`]), never
//! waited for with a fixed sleep; every body runs under [`support::guard`],
//! so a hung test fails instead of hanging the suite.

#[path = "../support/mod.rs"]
mod support;

mod appendix;
mod asks;
mod asks_members;
mod asks_spawn_cpus;
mod attach_retries;
mod attach_sockets;
mod attach_streams;
mod conformance;
mod conn_apps;
mod connections;
mod degraded;
mod descendants;
mod dispatch;
mod drains;
mod exit_codes;
mod failures;
mod host_signals;
mod hostile;
mod hostile_fds;
mod identity;
mod inherited;
mod inspect;
mod latency;
mod lifecycle;
mod listeners;
mod manage;
mod messaging;
mod messaging_cluster;
mod node_channel;
mod node_listen;
mod node_sdk;
mod order;
mod placement;
mod plain;
mod pool_stats;
mod protocol;
mod readiness;
mod recycling;
mod regressions;
mod reload;
mod restarts;
mod run_as;
mod settings;
mod signals;
mod stalls;
mod start_failures;
mod sticky;
mod strangers;
mod update_config;
mod validation;
