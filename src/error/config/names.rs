//! What a [`ConfigError`] points at: the pool or listener it names, so a
//! host program can show the place in its own configuration.

use super::ConfigError;

impl ConfigError {
    /// The pool the error names, if any (for a listener naming an unknown
    /// pool, that pool): a host program can point at its configuration.
    pub fn pool(&self) -> Option<&str> {
        match self {
            Self::DuplicatePool { pool, .. }
            | Self::ZeroWorkers { pool, .. }
            | Self::TooManyWorkers { pool, .. }
            | Self::ZeroConcurrency { pool, .. }
            | Self::EmptyProgram { pool, .. }
            | Self::ProgramNotFound { pool, .. }
            | Self::LogicalIds { pool, .. }
            | Self::DuplicateLogicalId { pool, .. }
            | Self::ZeroMaxRequests { pool, .. }
            | Self::ZeroMaxRequestDuration { pool, .. }
            | Self::PoolSetting { pool, .. }
            | Self::ListenerPool { pool, .. }
            | Self::PlainRoundRobin { pool, .. }
            | Self::PlainFdChannel { pool }
            | Self::ReadinessPath { pool, .. }
            | Self::ReadinessDelay { pool, .. }
            | Self::CpuAffinity { pool, .. }
            | Self::EmptyCpuAffinity { pool, .. }
            | Self::CpuAffinityConflict { pool, .. }
            | Self::CpuAffinityUnsupported { pool, .. }
            | Self::SpawnLimitBelowWorkers { pool, .. }
            | Self::EmptyForwardPrefix { pool, .. }
            | Self::UnknownUser { pool, .. }
            | Self::UnknownGroup { pool, .. }
            | Self::RlimitSoftOverHard { pool, .. }
            | Self::NotLive { pool, .. } => Some(pool),
            _ => None,
        }
    }

    /// The listener the error names, if any.
    pub fn listener(&self) -> Option<&str> {
        match self {
            Self::ListenerPool { listener, .. }
            | Self::DuplicateListener { listener, .. }
            | Self::ZeroBacklog { listener, .. }
            | Self::ListenerNameColon { listener, .. }
            | Self::PlainRoundRobin { listener, .. }
            | Self::StickyListener { listener, .. } => Some(listener),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ConfigError;

    #[test]
    fn an_error_names_its_pool_or_listener() {
        let e = ConfigError::ZeroWorkers { pool: "api".into() };
        assert_eq!((e.pool(), e.listener()), (Some("api"), None));
        let e = ConfigError::ListenerPool {
            listener: "web".into(),
            pool: "nope".into(),
        };
        assert_eq!((e.pool(), e.listener()), (Some("nope"), Some("web")));
        assert_eq!(
            (ConfigError::NoPools.pool(), ConfigError::NoPools.listener()),
            (None, None)
        );
    }
}
