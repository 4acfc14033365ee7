//! Where the captured output of silent pools goes (see [`crate::output`]).

use std::sync::Arc;

use super::Builder;
use crate::output::{OutputLine, Sink};

impl Builder {
    /// Gives every line the workers of [`silent`](crate::Pool::silent)
    /// pools write to `sink`, instead of a `tracing` event per line (the
    /// default). Lines are still classified and counted
    /// ([`WorkerHealth::errors`](crate::WorkerHealth::errors) and
    /// [`warnings`](crate::WorkerHealth::warnings)). See [`crate::output`].
    ///
    /// `sink` runs on the capture task of the worker's stream, once per
    /// line, in order per stream: it must not block (a blocked sink stalls
    /// that stream, and then the worker writing to it). To write files,
    /// hand the line to a bounded channel with `try_send`, and drop (and
    /// count) what does not fit. Setting it again replaces it.
    pub fn on_output<F>(mut self, sink: F) -> Self
    where
        F: Fn(&OutputLine<'_>) + Send + Sync + 'static,
    {
        self.cfg.output = Some(Sink(Arc::new(sink)));
        self
    }
}
