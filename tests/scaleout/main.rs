//! nanny's scale-out tests (issue 16): supervisors sharing one request
//! queue per pool on a real `redis-server` ([`redis_server`]), with real
//! worker processes (the `nanny-test-worker` fixture).
//!
//! * `local`: two supervisors in this one process, sharing one Redis,
//!   act as two hosts.
//! * `recovery`: a lost group made again, a dead consumer's deliveries
//!   reclaimed (or failed with `HostLost` once their attempts are spent),
//!   an entry that does not decode dropped.
//! * `scripts`: the Lua fence against a real Redis, and a proptest of the
//!   backend's state machine (claims, fences, replies in any order).
//! * `streams`: a streamed answer across hosts fails typed; `local()`
//!   keeps a request (and its stream) on its host.
//! * `tls`: two hosts over `rediss://` to a TLS `redis-server` with a
//!   private CA (made by `openssl`).
//!
//! * `crash`, `fence`, `callers`, `restart`: three host processes (the
//!   fixture's `host` mode, driven by [`hosts`], checked by [`checks`]),
//!   two of them also callers, and a real signal: a host SIGKILLed
//!   mid-load, a host SIGSTOPped past `min_idle` then SIGCONTed, a
//!   caller-only host SIGKILLed, Redis restarted with AOF on.
//!
//! Same rules as the integration tests: no timing assertions, conditions
//! polled with deadlines, every body under [`support::guard`]. A missing
//! `redis-server` fails these tests; it never skips them.

#[path = "../support/mod.rs"]
mod support;

mod redis_server;

mod local;
mod recovery;
mod scripts;
mod streams;
mod tls;

mod checks;
mod hosts;

mod callers;
mod crash;
mod fence;
mod restart;
