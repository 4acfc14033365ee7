//! The timers, restart budget and health rules of one pool.
//!
//! [`Settings`] are what the supervisor reads at run time, one per pool.
//! The builder holds the defaults ([`Builder::start_timeout`] and friends);
//! a [`Pool`](super::Pool) holds [`Overrides`], the fields it sets for
//! itself ([`Pool::start_timeout`](super::Pool::start_timeout) and
//! friends); [`Settings::with`] lays the second over the first once, at
//! start. A pool that sets nothing runs on the builder's values.
//!
//! [`Builder::start_timeout`]: crate::Builder::start_timeout

use std::time::Duration;

use crate::error::ConfigError;

use super::{Backoff, Predicate};

/// One pool's effective settings (each documented on its builder setter).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) start_timeout: Duration,
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) force_stop_delay: Option<Duration>,
    pub(crate) restart_delay: Duration,
    pub(crate) restart_backoff: Option<Backoff>,
    pub(crate) max_restarts: u32,
    pub(crate) restart_window: Duration,
    pub(crate) unhealthy_timeout: Option<Duration>,
    pub(crate) is_healthy: Option<Predicate>,
    pub(crate) reload_delay: Duration,
}

/// The settings a pool gives itself; `None` takes the builder's. A setting
/// that is itself optional (`drain_timeout: None` = no bound) is an
/// `Option<Option<_>>`: `Some(None)` overrides with "none".
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) drain_timeout: Option<Option<Duration>>,
    pub(crate) force_stop_delay: Option<Option<Duration>>,
    pub(crate) restart_delay: Option<Duration>,
    pub(crate) restart_backoff: Option<Option<Backoff>>,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_window: Option<Duration>,
    pub(crate) unhealthy_timeout: Option<Option<Duration>>,
    pub(crate) is_healthy: Option<Predicate>,
    pub(crate) reload_delay: Option<Duration>,
}

/// The largest [`reload_delay`](crate::Builder::reload_delay) accepted: a
/// rolling reload of a few workers should not take hours by mistake.
pub(crate) const MAX_RELOAD_DELAY: Duration = Duration::from_secs(3600);

impl Settings {
    /// The stall limit as a worker is told it (hello and environment).
    pub(crate) fn unhealthy_timeout_ms(&self) -> Option<u64> {
        (self.unhealthy_timeout).map(|t| t.as_millis().try_into().unwrap_or(u64::MAX))
    }

    /// `self` (the builder's) with the pool's `overrides` laid over it.
    pub(crate) fn with(&self, o: &Overrides) -> Settings {
        Settings {
            start_timeout: o.start_timeout.unwrap_or(self.start_timeout),
            drain_timeout: o.drain_timeout.unwrap_or(self.drain_timeout),
            force_stop_delay: o.force_stop_delay.unwrap_or(self.force_stop_delay),
            restart_delay: o.restart_delay.unwrap_or(self.restart_delay),
            restart_backoff: o.restart_backoff.unwrap_or(self.restart_backoff),
            max_restarts: o.max_restarts.unwrap_or(self.max_restarts),
            restart_window: o.restart_window.unwrap_or(self.restart_window),
            unhealthy_timeout: o.unhealthy_timeout.unwrap_or(self.unhealthy_timeout),
            is_healthy: o.is_healthy.clone().or_else(|| self.is_healthy.clone()),
            reload_delay: o.reload_delay.unwrap_or(self.reload_delay),
        }
    }

    /// The pause before the restart of a slot that failed `crashes` times
    /// in a row: the backoff's, or the fixed delay.
    pub(crate) fn restart_delay(&self, crashes: u32) -> Duration {
        match self.restart_backoff {
            Some(b) => b.delay(crashes.max(1)),
            None => self.restart_delay,
        }
    }

    /// The first setting out of range; `pulse` is the heartbeat interval
    /// an `unhealthy_timeout` must exceed.
    pub(crate) fn check(&self, pulse: Duration) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.start_timeout.is_zero() {
            return Err(E::ZeroStartTimeout);
        }
        if self.restart_window.is_zero() {
            return Err(E::ZeroRestartWindow);
        }
        if let Some(unhealthy_timeout) = self.unhealthy_timeout {
            if unhealthy_timeout <= pulse {
                return Err(E::UnhealthyTimeoutNotAbovePulse {
                    unhealthy_timeout,
                    pulse,
                });
            }
        }
        if self.force_stop_delay.is_some_and(|d| d.is_zero()) {
            return Err(E::ZeroForceStopDelay);
        }
        if self.drain_timeout.is_some_and(|d| d.is_zero()) {
            return Err(E::ZeroDrainTimeout);
        }
        if let Some(b) = &self.restart_backoff {
            if !(b.multiplier >= 1.0 && b.multiplier.is_finite()) {
                return Err(E::BackoffMultiplier {
                    multiplier: b.multiplier,
                });
            }
            if b.initial > b.max {
                return Err(E::BackoffInitialOverMax {
                    initial: b.initial,
                    max: b.max,
                });
            }
        }
        if self.reload_delay > MAX_RELOAD_DELAY {
            return Err(E::ReloadDelayTooLong {
                reload_delay: self.reload_delay,
                max: MAX_RELOAD_DELAY,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        crate::Supervisor::builder().into_config().defaults
    }

    #[test]
    fn an_empty_override_keeps_every_default() {
        let d = defaults();
        let s = d.with(&Overrides::default());
        assert_eq!(s.start_timeout, d.start_timeout);
        assert_eq!(s.drain_timeout, d.drain_timeout);
        assert_eq!(s.force_stop_delay, d.force_stop_delay);
        assert_eq!(s.restart_delay, d.restart_delay);
        assert_eq!(s.restart_backoff, d.restart_backoff);
        assert_eq!(s.max_restarts, d.max_restarts);
        assert_eq!(s.restart_window, d.restart_window);
        assert_eq!(s.unhealthy_timeout, d.unhealthy_timeout);
        assert_eq!(s.reload_delay, d.reload_delay);
        assert!(s.is_healthy.is_none());
    }

    #[test]
    fn an_override_of_none_replaces_a_default_of_some() {
        let d = defaults();
        assert!(d.force_stop_delay.is_some() && d.unhealthy_timeout.is_some());
        let o = Overrides {
            force_stop_delay: Some(None),
            unhealthy_timeout: Some(None),
            max_restarts: Some(9),
            ..Overrides::default()
        };
        let s = d.with(&o);
        assert_eq!(s.force_stop_delay, None);
        assert_eq!(s.unhealthy_timeout, None);
        assert_eq!(s.max_restarts, 9);
        assert_eq!(s.start_timeout, d.start_timeout);
    }

    #[test]
    fn a_fixed_delay_or_a_backoff_decides_the_restart_delay() {
        let mut s = defaults();
        s.restart_delay = Duration::from_millis(7);
        assert_eq!(s.restart_delay(3), Duration::from_millis(7));
        s.restart_backoff = Some(Backoff::exponential(Duration::from_millis(100)));
        assert_eq!(s.restart_delay(0), Duration::from_millis(100));
        assert_eq!(s.restart_delay(2), Duration::from_millis(150));
    }

    #[test]
    fn check_names_the_first_bad_setting() {
        let pulse = Duration::from_secs(1);
        let mut s = defaults();
        assert!(s.check(pulse).is_ok());
        s.unhealthy_timeout = Some(pulse);
        assert!(matches!(
            s.check(pulse),
            Err(ConfigError::UnhealthyTimeoutNotAbovePulse { .. })
        ));
        s.unhealthy_timeout = None;
        s.reload_delay = MAX_RELOAD_DELAY + Duration::from_secs(1);
        assert!(matches!(
            s.check(pulse),
            Err(ConfigError::ReloadDelayTooLong { .. })
        ));
    }
}
