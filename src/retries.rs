//! [`Retries`]: how many times a request is tried again after a transport
//! failure.

/// How many times a request is retried after a transport failure (attempt
/// timeout, worker exit, protocol error). A handler's error answer is never
/// retried.
///
/// `Limited(n)` makes at most `n + 1` attempts; a plain number converts to
/// it, so `.retries(3)` reads as usual. [`Retries::Unlimited`] is
/// load-process-manager's `retries: -1`: it retries until an attempt
/// answers, bounded only by the request's `deadline` (if any), a soft kill's
/// `drain_timeout` or a hard kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retries {
    /// At most this many retries.
    Limited(u32),
    /// Retry without limit.
    Unlimited,
}

impl Retries {
    /// Spends one retry; false when none is left.
    pub(crate) fn take_one(&mut self) -> bool {
        match self {
            Retries::Unlimited => true,
            Retries::Limited(0) => false,
            Retries::Limited(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// Whether another retry could follow.
    pub(crate) fn any_left(self) -> bool {
        self != Retries::Limited(0)
    }
}

impl Default for Retries {
    /// No retry (the seed's default).
    fn default() -> Self {
        Retries::Limited(0)
    }
}

impl From<u32> for Retries {
    fn from(n: u32) -> Self {
        Retries::Limited(n)
    }
}

#[cfg(test)]
mod tests {
    use super::Retries;

    #[test]
    fn limited_counts_down_and_unlimited_never_ends() {
        let mut r = Retries::from(2);
        assert!(r.any_left());
        assert!(r.take_one());
        assert!(r.take_one());
        assert!(!r.any_left());
        assert!(!r.take_one());
        let mut u = Retries::Unlimited;
        for _ in 0..1000 {
            assert!(u.take_one());
        }
        assert!(u.any_left());
        assert_eq!(Retries::default(), Retries::Limited(0));
    }
}
