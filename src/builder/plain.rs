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
            if p.spec.plain && p.spec.fd_channel != crate::FdChannelFlavor::SeqPacket {
                return Err(E::PlainFdChannel { pool: p.name.clone() });
            }
            let Some(probe) = &p.readiness else { continue };
            if let Err(path) = probe.valid_path() {
                return Err(E::ReadinessPath {
                    pool: p.name.clone(),
                    path: path.to_owned(),
                });
            }
            let start_timeout = self.defaults.with(&p.settings).start_timeout;
            if let Probe::Delay(delay) = probe.probe {
                if delay >= start_timeout {
                    return Err(E::ReadinessDelay {
                        pool: p.name.clone(),
                        delay,
                        start_timeout,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{ConfigError as E, FdChannelFlavor, Listener, Pool, Readiness, Supervisor, WorkerSpec};

    fn plain_pool() -> Pool {
        Pool::new("p", WorkerSpec::new("/bin/sh").plain()).workers(1)
    }

    fn check(b: crate::Builder) -> Result<(), E> {
        b.cfg.validate()
    }

    #[test]
    fn plain_pools_take_only_socket_activation() {
        let l = Listener::tcp(([127, 0, 0, 1], 0));
        let b = Supervisor::builder().pool(plain_pool());
        assert!(matches!(
            check(b.clone().listen(l.clone())),
            Err(E::PlainRoundRobin { pool, .. }) if pool == "p"
        ));
        assert!(check(b.listen(l.socket_activation())).is_ok());
    }

    #[test]
    fn plain_pools_have_no_node_channel() {
        let node = |p: Pool| Supervisor::builder().pool(p.fd_channel(FdChannelFlavor::Node));
        assert!(matches!(
            check(node(plain_pool())),
            Err(E::PlainFdChannel { pool }) if pool == "p"
        ));
        assert_eq!(E::PlainFdChannel { pool: "p".into() }.pool(), Some("p"));
        let protocol = Pool::new("n", WorkerSpec::new("/bin/sh")).workers(1);
        assert!(check(node(protocol)).is_ok());
    }

    #[test]
    fn a_socket_activated_name_has_no_colon() {
        let b = Supervisor::builder().pool(plain_pool());
        let named = |n: &str| Listener::tcp(([127, 0, 0, 1], 0)).name(n).socket_activation();
        assert!(matches!(
            check(b.clone().listen(named("a:b"))),
            Err(E::ListenerNameColon { .. })
        ));
        assert!(check(b.clone().listen(named("web"))).is_ok());
        // Unnamed, it is passed as `unknown`; its address may hold colons.
        let unnamed = Listener::tcp(([127, 0, 0, 1], 0)).socket_activation();
        assert!(check(b.listen(unnamed)).is_ok());
    }

    #[test]
    fn probes_are_checked() {
        let with = |r: Readiness| Supervisor::builder().pool(plain_pool().readiness(r));
        let http = Readiness::http(([127, 0, 0, 1], 80), "no-slash");
        assert!(matches!(check(with(http)), Err(E::ReadinessPath { path, .. }) if path == "no-slash"));
        let long = with(Readiness::delay(Duration::from_secs(2))).start_timeout(Duration::from_secs(1));
        assert!(matches!(check(long), Err(E::ReadinessDelay { .. })));
        assert!(check(with(Readiness::delay(Duration::from_millis(10)))).is_ok());
    }
}
