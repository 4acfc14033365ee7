//! A pool's user, group and resource limits reach its workers (the tests
//! run as root, here and in CI: switching user needs the privilege).

use nanny::{ConfigError, Pool, Rlimit, StartError, Supervisor};

use crate::support::plain::sleeper;
use crate::support::*;

#[tokio::test]
async fn a_worker_runs_as_its_pools_user_with_its_rlimits() {
    guard(async {
        let (uid, gid) = passwd_ids("nobody");
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::new("jobs", sleeper(false))
                    .workers(1)
                    .user("nobody")
                    .rlimit(Rlimit::Nofile, 256, 512),
            )
            .start()
            .await
            .expect("a pool run as nobody starts");
        let pid = health(&sup).await[0].pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // Real, effective, saved and filesystem ids all switched.
        let ids = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Uid:"), vec![uid.clone(); 4], "{status}");
        assert_eq!(ids("Gid:"), vec![gid.clone(); 4], "{status}");
        assert!(
            !ids("Groups:").contains(&"0".to_owned()),
            "root's group dropped: {status}"
        );
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let nofile = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        assert_eq!(
            nofile.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
            ["256", "512"],
            "{limits}"
        );
        within("soft kill", sup.soft_kill()).await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_user_or_a_soft_limit_over_the_hard_one_is_a_config_error() {
    guard(async {
        let pool = || Pool::new("jobs", sleeper(false)).workers(1);
        let refused = |b: nanny::Builder| match b.spawn() {
            Err(StartError::Config(e)) => e,
            other => panic!("expected a config error, got {other:?}"),
        };
        let e = refused(Supervisor::builder().pool(pool().user("no-such-user-here")));
        assert!(
            matches!(&e, ConfigError::UnknownUser { pool, .. } if pool == "jobs"),
            "{e}"
        );
        assert_eq!(e.pool(), Some("jobs"));
        assert_eq!(e.to_string(), "pool \"jobs\": unknown user no-such-user-here");
        let e = refused(Supervisor::builder().pool(pool().group("no-such-group-here")));
        assert!(matches!(e, ConfigError::UnknownGroup { .. }), "{e}");
        let e = refused(Supervisor::builder().pool(pool().rlimit(Rlimit::Core, 2, 1)));
        assert!(
            matches!(
                e,
                ConfigError::RlimitSoftOverHard {
                    resource: Rlimit::Core,
                    soft: 2,
                    hard: 1,
                    ..
                }
            ),
            "{e}"
        );
        // `validate` finds the same without a runtime or a spawn.
        let builder = Supervisor::builder().pool(pool().user("no-such-user-here"));
        assert!(matches!(builder.validate(), Err(ConfigError::UnknownUser { .. })));
        assert!(Supervisor::builder()
            .pool(pool().user("nobody"))
            .validate()
            .is_ok());
    })
    .await;
}

/// `user`'s uid and primary gid, from `/etc/passwd`.
fn passwd_ids(user: &str) -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = (passwd.lines())
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("{user} in /etc/passwd"));
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].to_owned(), fields[3].to_owned())
}
