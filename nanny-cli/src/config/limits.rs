//! A pool's `user`, `group` and `rlimits` in the file:
//! `user = "nobody"` or a uid, `group = "www-data"` or a gid, and
//! `rlimits = { nofile = 4096, core = 0, stack = "8MiB", as = "unlimited" }`.
//!
//! One value sets the soft and the hard limit alike (as systemd's
//! `LimitNOFILE=4096`); `{ soft = 1024, hard = 4096 }` sets them apart. A
//! value is an integer, a size string (`"8MiB"`, see [`super::units`]) or
//! `"unlimited"`. The resources are the library's [`nanny::Rlimit`] names;
//! any other key is an error at its place.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// `user = "nobody"` / `user = 65534` (and the same for `group`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a name, or a numeric id")]
pub(crate) enum Account {
    /// A numeric uid or gid.
    Id(u32),
    /// A name.
    Name(String),
}

impl From<&Account> for nanny::NameOrId {
    fn from(a: &Account) -> Self {
        match a {
            Account::Id(id) => nanny::NameOrId::Id(*id),
            Account::Name(n) => nanny::NameOrId::Name(n.clone()),
        }
    }
}

/// `rlimits = { ... }`: one optional entry per resource the library knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rlimits {
    nofile: Option<LimitConfig>,
    core: Option<LimitConfig>,
    nproc: Option<LimitConfig>,
    stack: Option<LimitConfig>,
    fsize: Option<LimitConfig>,
    #[serde(rename = "as")]
    address_space: Option<LimitConfig>,
    memlock: Option<LimitConfig>,
    cpu: Option<LimitConfig>,
    data: Option<LimitConfig>,
}

impl Rlimits {
    /// Every limit given, as `(resource, soft, hard)`.
    pub(crate) fn entries(&self) -> Vec<(nanny::Rlimit, u64, u64)> {
        use nanny::Rlimit as R;
        [
            (R::Nofile, self.nofile),
            (R::Core, self.core),
            (R::Nproc, self.nproc),
            (R::Stack, self.stack),
            (R::Fsize, self.fsize),
            (R::As, self.address_space),
            (R::Memlock, self.memlock),
            (R::Cpu, self.cpu),
            (R::Data, self.data),
        ]
        .into_iter()
        .filter_map(|(r, l)| {
            l.map(|l| match l {
                LimitConfig::Both(v) => (r, v.0, v.0),
                LimitConfig::Pair { soft, hard } => (r, soft.0, hard.0),
            })
        })
        .collect()
    }
}

/// One resource's limit: one value for both, or `{ soft, hard }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a limit (a number, a size such as \"8MiB\", or \"unlimited\"), or { soft = .., hard = .. }"
)]
pub(crate) enum LimitConfig {
    /// Soft and hard alike.
    Both(Limit),
    /// Each its own.
    Pair {
        /// The soft limit.
        soft: Limit,
        /// The hard limit.
        hard: Limit,
    },
}

/// A limit value; `"unlimited"` is [`nanny::RLIMIT_UNLIMITED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub(crate) u64);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LimitVisitor)
    }
}

struct LimitVisitor;

const LIMIT_EXPECTED: &str = "a limit: a number, a size such as \"8MiB\", or \"unlimited\"";

impl Visitor<'_> for LimitVisitor {
    type Value = Limit;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(LIMIT_EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Limit, E> {
        u64::try_from(v)
            .map(Limit)
            .map_err(|_| E::custom(format!("invalid limit {v}: expected {LIMIT_EXPECTED}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
        Ok(Limit(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
        if v == "unlimited" {
            return Ok(Limit(nanny::RLIMIT_UNLIMITED));
        }
        super::units::parse_size(v)
            .map(Limit)
            .map_err(|_| E::custom(format!("invalid limit {v:?}: expected {LIMIT_EXPECTED}")))
    }
}
