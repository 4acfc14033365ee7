//! A worker's spawn with CPUs of its own (issue 11, `SpawnRequest::cpus`):
//! its workers and their replacements run there, within the pool's set.

use nanny::{Pool, Supervisor};

use crate::asks::call;
use crate::support::procfs::{own_cpus, thread_cpus};
use crate::support::{eventually, guard, is_dead, sigkill, timers, worker_spec, Cmd};

/// The pid and the CPUs `inspect()` shows of slot `name`.
async fn slot(sup: &Supervisor, name: &str) -> (Option<u32>, Option<Vec<usize>>) {
    let info = sup.inspect().await.expect("inspect");
    let s = (info.pools.iter().flat_map(|p| &p.slots))
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no slot {name}"));
    (s.pid, s.cpus.clone())
}

/// Every thread of `pid` runs on exactly `cpus`.
fn runs_on(pid: u32, cpus: &[usize]) {
    let threads = thread_cpus(pid);
    assert!(!threads.is_empty(), "{pid}: no threads read");
    assert!(
        threads.iter().all(|t| t == cpus),
        "{pid}: {threads:?}, want {cpus:?}"
    );
}

#[tokio::test]
async fn a_spawn_s_cpu_pins_its_worker_and_the_replacement_and_stays_in_the_pool_s_set() {
    guard(async {
        // Two CPUs on the CI machine: the last is 1, the pool's own set 0.
        let cpus = own_cpus();
        let (first, last) = (cpus[0], cpus[cpus.len() - 1]);
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("asker", worker_spec("normal")).workers(1))
                .pool(
                    Pool::new("elastic", worker_spec("normal"))
                        .workers(1)
                        .allow_spawn(3),
                )
                .pool(
                    Pool::new("narrow", worker_spec("normal"))
                        .workers(1)
                        .cpu_affinity([first])
                        .allow_spawn(2),
                ),
        )
        .max_restarts(10)
        .start()
        .await
        .expect("start");
        let spawn = |pool: &str, cpus: Vec<usize>| Cmd::Spawn {
            pool: pool.into(),
            count: 1,
            respawn: true,
            args: Vec::new(),
            cpus: Some(cpus),
        };
        let spawned: Vec<(u64, String)> = call(&sup, Some("asker"), spawn("elastic", vec![last]))
            .await
            .expect("spawned");
        assert_eq!(spawned[0].1, "elastic:02");
        assert_eq!(slot(&sup, "elastic:01").await.1, None, "the pool's are unpinned");
        let (pid, shown) = slot(&sup, "elastic:02").await;
        assert_eq!(shown, Some(vec![last]), "inspect() shows the slot's own CPU");
        let pid = pid.expect("running");
        runs_on(pid, &[last]);

        // Its replacement keeps the slot's CPU.
        sigkill(pid);
        let replacement = eventually("elastic:02 is refilled", || async {
            let now = slot(&sup, "elastic:02").await.0;
            now.filter(|&p| p != pid && !is_dead(p))
        })
        .await;
        sup.ready().await.expect("ready again");
        runs_on(replacement, &[last]);
        assert_eq!(slot(&sup, "elastic:02").await.1, Some(vec![last]));

        // Outside the pool's own set, or the supervisor's: refused, no slot.
        for (pool, cpu) in [("narrow", first + 1), ("elastic", 4096)] {
            let refused: Result<Vec<(u64, String)>, String> =
                call(&sup, Some("asker"), spawn(pool, vec![cpu])).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.starts_with("Refused") && e.contains(&format!("CPU {cpu} is not in"))),
                "{pool}, CPU {cpu}: {refused:?}"
            );
        }
        let empty: Result<Vec<(u64, String)>, String> =
            call(&sup, Some("asker"), spawn("narrow", vec![])).await;
        assert!(empty.is_err_and(|e| e.starts_with("Refused")), "an empty set");
        let info = sup.inspect().await.expect("inspect");
        let slots = |name| (info.pools.iter().find(|p| p.name == name)).map(|p| p.slots.len());
        assert_eq!((slots("narrow"), slots("elastic")), (Some(1), Some(2)));
        sup.soft_kill().await;
    })
    .await;
}
