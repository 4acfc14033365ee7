//! The `nanny` binary end to end: real files, real worker processes, real
//! signals and sockets. One test binary (one link) with a module per area.

mod api;
mod bodies;
mod dashboard;
mod endpoints;
mod logs;
mod metrics;
mod openapi;
mod queue;
mod reload;
mod run;
mod support;
mod systemd;
mod upgrade;
mod verbs;
