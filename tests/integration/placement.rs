//! Process titles and CPU affinity: what `ps` shows of the supervisor and
//! its workers, and where the workers may run.

use std::collections::BTreeMap;

use nanny::{ConfigError, Listener, Pool, StartError, Supervisor, WorkerSpec};

use crate::support::plain::{free_port, plain_server};
use crate::support::procfs::{cmdline, comm, environ_var, own_cpus, thread_cpus};
use crate::support::*;

/// `name → pid` of every slot with a worker.
async fn pids_by_name(sup: &Supervisor) -> BTreeMap<String, u32> {
    let info = sup.inspect().await.expect("inspect");
    (info.pools.iter().flat_map(|p| &p.slots))
        .filter_map(|s| Some((s.name.clone(), s.pid?)))
        .collect()
}

/// `argv[0]` of `pid`, once its exec is done (a plain program counts as
/// ready as soon as it runs, which can be before its exec has finished).
async fn argv0_becomes(pid: u32, want: &str) {
    wait_until(&format!("argv[0] of {pid} is {want:?}"), || async {
        cmdline(pid).first().map(String::as_str) == Some(want)
    })
    .await;
}

#[tokio::test]
async fn workers_are_titled_with_the_base_and_their_name_across_a_restart() {
    guard(async {
        let sup = builder(2)
            .process_title("nanny-titled")
            .max_restarts(10)
            .start()
            .await
            .expect("start");
        let before = pids_by_name(&sup).await;
        assert_eq!(before.keys().collect::<Vec<_>>(), ["default:01", "default:02"]);
        for (name, &pid) in &before {
            let title = format!("nanny-titled {name}");
            argv0_becomes(pid, &title).await;
            assert_eq!(
                environ_var(pid, "NANNY_WORKER_NAME").as_deref(),
                Some(name.as_str())
            );
            assert_eq!(environ_var(pid, "NANNY_PROCESS_TITLE"), Some(title));
        }
        let victim = before["default:02"];
        sigkill(victim);
        let replacement = eventually("default:02 is refilled", || async {
            let pid = pids_by_name(&sup).await.get("default:02").copied();
            pid.filter(|&p| p != victim && !is_dead(p))
        })
        .await;
        sup.ready().await.expect("ready again");
        argv0_becomes(replacement, "nanny-titled default:02").await;
        assert_eq!(
            environ_var(replacement, "NANNY_WORKER_NAME").as_deref(),
            Some("default:02")
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_title_workers_keep_their_argv0_and_still_get_their_name() {
    guard(async {
        let sup = start(1).await;
        let pid = pids_by_name(&sup).await["default:01"];
        argv0_becomes(pid, WORKER).await;
        assert_eq!(
            environ_var(pid, "NANNY_WORKER_NAME").as_deref(),
            Some("default:01")
        );
        assert_eq!(environ_var(pid, "NANNY_PROCESS_TITLE"), None);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn plain_programs_are_titled_with_and_without_socket_activation() {
    guard(async {
        let sleep = WorkerSpec::new("sleep").arg("600").plain();
        let sup = timers(Supervisor::builder())
            .pool(Pool::new("web", plain_server()).workers(1))
            .pool(Pool::new("nap", sleep).workers(1))
            .listen(Listener::tcp(free_port()).pool("web").socket_activation())
            .process_title("nanny-plain")
            .start()
            .await
            .expect("start");
        let pids = pids_by_name(&sup).await;
        // Socket activation execs by hand (activation.rs), `sleep` through std.
        argv0_becomes(pids["web:01"], "nanny-plain web:01").await;
        argv0_becomes(pids["nap:01"], "nanny-plain nap:01").await;
        assert_eq!(cmdline(pids["nap:01"]), ["nanny-plain nap:01", "600"]);
        assert_eq!(
            environ_var(pids["web:01"], "NANNY_WORKER_NAME").as_deref(),
            Some("web:01")
        );
        // The kernel names a process after its executable, whatever argv[0].
        assert_eq!(comm(pids["nap:01"]).as_deref(), Some("sleep"));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn the_supervisor_s_comm_is_the_base_cut_to_15_bytes() {
    guard(async {
        let mut sup = Supervise::with(1, "normal", &["title=nanny-supervisor-42"]).await;
        assert_eq!(comm(sup.pid).as_deref(), Some("nanny-superviso"));
        // `ps -o args` still shows its command line: argv cannot be rewritten.
        assert_eq!(cmdline(sup.pid)[..2], [WORKER, "supervise"]);
        argv0_becomes(sup.workers[0], "nanny-supervisor-42 default:01").await;
        sup.signal(nix::sys::signal::Signal::SIGKILL);
        sup.wait().await;
    })
    .await;
}

#[tokio::test]
async fn workers_run_on_their_pool_s_cpus_or_on_one_each() {
    guard(async {
        // Two CPUs on the CI machine; one is enough to run (both ends equal).
        let cpus = own_cpus();
        let (first, last) = (cpus[0], cpus[cpus.len() - 1]);
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::new("shared", worker_spec("normal"))
                    .workers(1)
                    .cpu_affinity([last, first]),
            )
            .pool(
                Pool::new("each", worker_spec("normal"))
                    .workers(2)
                    .cpu_per_worker([last, first]),
            )
            .max_restarts(10)
            .start()
            .await
            .expect("start");
        let mut shared = vec![first, last];
        shared.dedup();
        let want = BTreeMap::from([
            ("shared:01".to_owned(), shared),
            ("each:01".to_owned(), vec![last]),
            ("each:02".to_owned(), vec![first]),
        ]);
        let info = sup.inspect().await.unwrap();
        let shown: BTreeMap<_, _> = (info.pools.iter().flat_map(|p| &p.slots))
            .map(|s| (s.name.clone(), s.cpus.clone().expect("pinned")))
            .collect();
        assert_eq!(shown, want, "inspect() shows each slot's CPUs");
        let pids = pids_by_name(&sup).await;
        for (name, cpus) in &want {
            let threads = thread_cpus(pids[name]);
            assert!(!threads.is_empty(), "{name}: no threads read");
            assert!(
                threads.iter().all(|t| t == cpus),
                "{name}: {threads:?}, want {cpus:?}"
            );
        }
        // A replacement runs where its slot does.
        let victim = pids["each:01"];
        sigkill(victim);
        let replacement = eventually("each:01 is refilled", || async {
            let pid = pids_by_name(&sup).await.get("each:01").copied();
            pid.filter(|&p| p != victim && !is_dead(p))
        })
        .await;
        sup.ready().await.expect("ready again");
        assert_eq!(thread_cpus(replacement)[0], [last]);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn bad_titles_and_cpu_sets_are_typed_errors_before_any_spawn() {
    guard(async {
        let marker = "placement";
        let pool = || Pool::default_pool(worker_spec("normal").env("NANNY_TEST_MARKER", marker)).workers(1);
        let title = |t: &str| Supervisor::builder().pool(pool()).process_title(t);
        let cpus = |p: Pool| Supervisor::builder().pool(p);
        let cases = [
            title(""),
            title("two\nlines"),
            title("nul\0byte"),
            title(&"x".repeat(65)),
            cpus(pool().cpu_affinity([4096])),
            cpus(pool().cpu_per_worker([own_cpus()[0], 100_000])),
            cpus(pool().cpu_affinity([])),
            cpus(pool().cpu_affinity([0]).cpu_per_worker([0])),
        ];
        let mut kinds = Vec::new();
        for builder in cases {
            match builder.spawn() {
                Err(StartError::Config(e)) => kinds.push(match e {
                    ConfigError::ProcessTitle { .. } => "title",
                    ConfigError::CpuAffinity { cpu, available, .. } => {
                        assert!(cpu >= 4096 && !available.contains(&cpu), "{cpu} {available:?}");
                        assert_eq!(available, own_cpus());
                        "range"
                    }
                    ConfigError::EmptyCpuAffinity { .. } => "empty",
                    ConfigError::CpuAffinityConflict { .. } => "conflict",
                    other => panic!("unexpected {other:?}"),
                }),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        }
        assert_eq!(
            kinds,
            ["title", "title", "title", "title", "range", "range", "empty", "conflict"]
        );
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(children_marked(marker), Vec::<u32>::new(), "a worker was spawned");
        // The longest title accepted starts.
        let sup = title(&"x".repeat(64)).start().await.expect("a 64-byte title");
        assert_eq!(children_marked(marker).len(), 1);
        sup.soft_kill().await;
    })
    .await;
}
