//! Validation of plain programs, socket activation and readiness probes.

use crate::error::ConfigError;
use crate::listen::Distribution;
use crate::readiness::Probe;

use super::Config;

impl Config {
    /// The first setting about plain pools, socket-activated listeners or
    /// readiness probes that is out of range, if any.
    pub(super) fn validate_plain(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        for l in &self.listeners {
            let pool = match &l.pool {
                Some(name) => self.pools.iter().find(|p| &p.name == name),
                None => self.pools.first(),
            };
            let listener = || l.display_name();
            match l.distribution {
                Distribution::SocketActivation if l.name.as_deref().is_some_and(|n| n.contains(':')) => {
                    return Err(E::ListenerNameColon { listener: listener() });
                }
                Distribution::RoundRobin if pool.is_some_and(|p| p.spec.plain) => {
                    return Err(E::PlainRoundRobin {
                        listener: listener(),
                        pool: pool.map(|p| p.name.clone()).unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        for p in &self.pools {
            let Some(probe) = &p.readiness else { continue };
            if let Err(path) = probe.valid_path() {
                return Err(E::ReadinessPath {
                    pool: p.name.clone(),
                    path: path.to_owned(),
                });
            }
            if let Probe::Delay(delay) = probe.probe {
                if delay >= self.start_timeout {
                    return Err(E::ReadinessDelay {
                        pool: p.name.clone(),
                        delay,
                        start_timeout: self.start_timeout,
                    });
                }
            }
        }
        Ok(())
    }
}
