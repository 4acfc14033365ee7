//! The `nanny` binary end to end: real files, real worker processes, real
//! signals and sockets. One test binary (one link) with a module per area.

mod api;
mod dashboard;
mod logs;
mod metrics;
mod run;
mod support;
