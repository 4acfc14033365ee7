//! Who a worker runs as and within which resource limits: the user, group
//! and rlimits of a [`WorkerSpec`](crate::WorkerSpec) (systemd's `User=`,
//! `Group=`, `LimitNOFILE=`…; pm2's `uid` / `gid`).
//!
//! Names are resolved to ids in the supervisor, before the spawn
//! (`getpwnam` and friends allocate and may take locks); the child only
//! makes system calls, in this order: `setrlimit` for each
//! limit (while still privileged, so a hard limit may be raised), then
//! `setgroups`, `setgid`, `setuid`. With a user, the groups are the user's
//! (`getgrouplist`, as `initgroups` does) and the gid is the user's
//! primary group unless a group is given; with only a group, the groups
//! are that one. Changing user or group needs the privilege to (root, or
//! `CAP_SETUID` / `CAP_SETGID`); without it a worker fails to start, unless
//! the supervisor already runs as that user and group (then nothing is
//! switched).
//!
//! The child runs in the supervisor's memory until it execs (see
//! `worker::spawn::launch`), so `setgroups`, `setgid` and `setuid` are raw
//! system calls: glibc's wrappers change the credentials of every thread
//! of the process, by signalling each thread it knows of, which here would
//! be the supervisor's threads.

use std::ffi::CString;
use std::fmt;

use nix::sys::resource::{self, Resource};
use nix::unistd::{Gid, Group, Uid, User};

use crate::error::ConfigError;

/// An rlimit value that means no limit (`RLIM_INFINITY`).
pub const RLIMIT_UNLIMITED: u64 = nix::libc::RLIM_INFINITY;

/// A user or a group: a name, looked up when the supervisor starts (and
/// at each spawn), or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NameOrId {
    /// A name (`"nobody"`, `"www-data"`).
    Name(String),
    /// A numeric uid or gid.
    Id(u32),
}

impl From<&str> for NameOrId {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for NameOrId {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl From<u32> for NameOrId {
    fn from(id: u32) -> Self {
        Self::Id(id)
    }
}

impl fmt::Display for NameOrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A resource a worker's limit can be set for (`setrlimit(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rlimit {
    /// `RLIMIT_NOFILE`: open file descriptors.
    Nofile,
    /// `RLIMIT_CORE`: core file size, bytes.
    Core,
    /// `RLIMIT_NPROC`: processes (threads) of the user.
    Nproc,
    /// `RLIMIT_STACK`: stack size, bytes.
    Stack,
    /// `RLIMIT_FSIZE`: largest file written, bytes.
    Fsize,
    /// `RLIMIT_AS`: address space, bytes.
    As,
    /// `RLIMIT_MEMLOCK`: locked memory, bytes.
    Memlock,
    /// `RLIMIT_CPU`: CPU time, seconds.
    Cpu,
    /// `RLIMIT_DATA`: data segment, bytes.
    Data,
}

impl Rlimit {
    /// Every resource, in declaration order.
    pub const ALL: [Rlimit; 9] = [
        Self::Nofile,
        Self::Core,
        Self::Nproc,
        Self::Stack,
        Self::Fsize,
        Self::As,
        Self::Memlock,
        Self::Cpu,
        Self::Data,
    ];

    /// Its lowercase name without `RLIMIT_` (`"nofile"`, systemd's
    /// `LimitNOFILE=` without `Limit`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nofile => "nofile",
            Self::Core => "core",
            Self::Nproc => "nproc",
            Self::Stack => "stack",
            Self::Fsize => "fsize",
            Self::As => "as",
            Self::Memlock => "memlock",
            Self::Cpu => "cpu",
            Self::Data => "data",
        }
    }

    /// The resource named `name` (as [`name`](Self::name) gives it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    fn resource(self) -> Resource {
        match self {
            Self::Nofile => Resource::RLIMIT_NOFILE,
            Self::Core => Resource::RLIMIT_CORE,
            Self::Nproc => Resource::RLIMIT_NPROC,
            Self::Stack => Resource::RLIMIT_STACK,
            Self::Fsize => Resource::RLIMIT_FSIZE,
            Self::As => Resource::RLIMIT_AS,
            Self::Memlock => Resource::RLIMIT_MEMLOCK,
            Self::Cpu => Resource::RLIMIT_CPU,
            Self::Data => Resource::RLIMIT_DATA,
        }
    }
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A spec's user, group and limits, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub(crate) user: Option<NameOrId>,
    pub(crate) group: Option<NameOrId>,
    /// `(resource, soft, hard)`, in the order set; a later one for the same
    /// resource replaces the earlier.
    pub(crate) rlimits: Vec<(Rlimit, u64, u64)>,
}

/// [`RunAs`] with every name resolved, ready for the child.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    uid: Option<Uid>,
    gid: Option<Gid>,
    groups: Option<Vec<nix::libc::gid_t>>,
    rlimits: Vec<(Resource, u64, u64)>,
}

impl RunAs {
    /// Whether nothing is to change.
    pub(crate) fn is_empty(&self) -> bool {
        self.user.is_none() && self.group.is_none() && self.rlimits.is_empty()
    }

    /// Sets a limit, replacing an earlier one for the same resource.
    pub(crate) fn set_rlimit(&mut self, resource: Rlimit, soft: u64, hard: u64) {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
    }

    /// Resolves the names (in the parent: this allocates and reads the
    /// user and group databases). An unknown user or group, or a soft
    /// limit over its hard one, is a [`ConfigError`] naming `pool`.
    pub(crate) fn resolve(&self, pool: &str) -> Result<Resolved, ConfigError> {
        for &(resource, soft, hard) in &self.rlimits {
            if soft > hard {
                return Err(ConfigError::RlimitSoftOverHard {
                    pool: pool.to_owned(),
                    resource,
                    soft,
                    hard,
                });
            }
        }
        let unknown_user = || ConfigError::UnknownUser {
            pool: pool.to_owned(),
            user: self.user.clone().unwrap_or(NameOrId::Id(0)),
        };
        let user = match &self.user {
            None => None,
            Some(NameOrId::Name(n)) => Some(User::from_name(n).ok().flatten().ok_or_else(unknown_user)?),
            Some(NameOrId::Id(id)) => Some(
                User::from_uid(Uid::from_raw(*id))
                    .ok()
                    .flatten()
                    .ok_or_else(unknown_user)?,
            ),
        };
        let group = match &self.group {
            None => None,
            Some(NameOrId::Id(id)) => Some(Gid::from_raw(*id)),
            Some(NameOrId::Name(n)) => Some(
                Group::from_name(n)
                    .ok()
                    .flatten()
                    .ok_or_else(|| ConfigError::UnknownGroup {
                        pool: pool.to_owned(),
                        group: NameOrId::Name(n.clone()),
                    })?
                    .gid,
            ),
        };
        let gid = group.or(user.as_ref().map(|u| u.gid));
        let groups = match (&user, gid) {
            (Some(u), Some(gid)) => {
                let name = CString::new(u.name.as_bytes()).map_err(|_| unknown_user())?;
                Some(nix::unistd::getgrouplist(&name, gid).unwrap_or_else(|_| vec![gid]))
            }
            (None, Some(gid)) => Some(vec![gid]),
            _ => None,
        };
        let uid = user.map(|u| u.uid);
        // Already the one asked for, without the privilege to switch:
        // nothing to switch (setgroups would fail with EPERM).
        let euid = Uid::effective();
        if !euid.is_root() && uid.is_none_or(|u| u == euid) && gid.is_none_or(|g| g == Gid::effective()) {
            return Ok(Resolved {
                rlimits: self.rlimit_values(),
                ..Resolved::default()
            });
        }
        Ok(Resolved {
            uid,
            gid,
            groups: groups.map(|g| g.into_iter().map(Gid::as_raw).collect()),
            rlimits: self.rlimit_values(),
        })
    }

    fn rlimit_values(&self) -> Vec<(Resource, u64, u64)> {
        (self.rlimits.iter())
            .map(|&(r, soft, hard)| (r.resource(), soft, hard))
            .collect()
    }
}

impl Resolved {
    /// In the child, before `exec`: the limits, then the groups, the gid
    /// and the uid. System calls only, on values resolved before the
    /// spawn; no allocation, and no glibc wrapper that acts on other
    /// threads (see the module docs).
    pub(crate) fn apply(&self) -> nix::Result<()> {
        use nix::libc;
        for &(resource, soft, hard) in &self.rlimits {
            resource::setrlimit(resource, soft, hard)?;
        }
        let check = |rc: libc::c_long| nix::errno::Errno::result(rc).map(drop);
        #[allow(unsafe_code)]
        // SAFETY: raw syscalls on plain ids, and on a pointer and length
        // of a live slice of gid_t for setgroups.
        unsafe {
            if let Some(groups) = &self.groups {
                check(libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()))?;
            }
            if let Some(gid) = self.gid {
                check(libc::syscall(libc::SYS_setgid, gid.as_raw()))?;
            }
            if let Some(uid) = self.uid {
                check(libc::syscall(libc::SYS_setuid, uid.as_raw()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_has_a_name_of_its_own() {
        for r in Rlimit::ALL {
            assert_eq!(Rlimit::from_name(r.name()), Some(r));
        }
        assert_eq!(Rlimit::from_name("nofle"), None);
    }

    #[test]
    fn a_later_limit_for_a_resource_replaces_the_earlier() {
        let mut run_as = RunAs::default();
        run_as.set_rlimit(Rlimit::Nofile, 1, 2);
        run_as.set_rlimit(Rlimit::Core, 0, 0);
        run_as.set_rlimit(Rlimit::Nofile, 3, 4);
        assert_eq!(run_as.rlimits, [(Rlimit::Core, 0, 0), (Rlimit::Nofile, 3, 4)]);
        assert!(run_as.resolve("p").is_ok());
        run_as.set_rlimit(Rlimit::Stack, 5, 4);
        assert!(matches!(
            run_as.resolve("p"),
            Err(ConfigError::RlimitSoftOverHard { soft: 5, hard: 4, .. })
        ));
    }

    #[test]
    fn a_numeric_group_needs_no_entry_and_a_user_brings_its_groups() {
        let run_as = RunAs {
            group: Some(NameOrId::Id(4_000_000)),
            ..RunAs::default()
        };
        let resolved = run_as.resolve("p").expect("a gid is taken as is");
        if Uid::effective().is_root() {
            assert_eq!(resolved.gid, Some(Gid::from_raw(4_000_000)));
            assert_eq!(resolved.groups, Some(vec![4_000_000]));
        }
        let root = RunAs {
            user: Some(NameOrId::Id(0)),
            ..RunAs::default()
        };
        let resolved = root.resolve("p").expect("uid 0 is root");
        if Uid::effective().is_root() {
            assert_eq!(
                (resolved.uid, resolved.gid),
                (Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))
            );
        }
    }
}
