//! Containing the workers' descendants (see [`crate::descendants`]).

use std::path::PathBuf;

use super::Builder;

impl Builder {
    /// Whether each worker's descendants get a PID namespace, so that
    /// nothing a worker starts outlives it or the supervisor (see
    /// [`crate::descendants`]). On by default; where it cannot work (no
    /// privilege, no `nanny-init`), start falls back to the process group
    /// and says why ([`Inspect::containment`](crate::Inspect::containment)).
    pub fn contain_descendants(mut self, on: bool) -> Self {
        self.cfg.descendants.enabled = on;
        self
    }

    /// The `nanny-init` program for [`contain_descendants`](Self::contain_descendants).
    /// Default: `$NANNY_INIT`, else `nanny-init` beside the running
    /// program, else in `PATH` (`cargo install nanny --bin nanny-init`).
    pub fn init_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.descendants.program = Some(path.into());
        self
    }
}
