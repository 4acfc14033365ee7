//! A worker's identity and surroundings: logical ids, per-worker
//! environment (`create_environment`) across a crash, and the output
//! capture of a silent pool.

use std::collections::BTreeMap;

use nanny::{Event, Pool, Supervisor};

use crate::support::*;

#[tokio::test]
async fn logical_ids_and_create_environment_survive_a_crash() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal").env("GREETING", "from the spec"))
                    .logical_ids([5, 6, 7])
                    .create_environment(|id| [("GREETING", format!("hi-{id}"))]),
            ),
        )
        .max_restarts(10)
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.pools[0].logical_ids, [5, 6, 7]);
        assert_eq!(info.count_workers(), 3);

        let by_slot = env_by_slot(&sup).await;
        assert_eq!(by_slot.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
        for (id, (_, greeting)) in &by_slot {
            assert_eq!(greeting.as_deref(), Some(format!("hi-{id}").as_str()));
        }

        let (victim, _) = by_slot[&6].clone();
        sigkill(victim);
        events
            .wait_for(
                "slot 6 is refilled",
                |e| matches!(e, Event::WorkerSpawned { logical_id: 6, pid, .. } if *pid != victim),
            )
            .await;
        sup.ready().await.expect("ready again");
        let after = env_by_slot(&sup).await;
        assert_eq!(after.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
        assert_ne!(after[&6].0, victim, "a new process");
        assert_eq!(after[&6].1.as_deref(), Some("hi-6"));
        assert_eq!((after[&5].0, after[&7].0), (by_slot[&5].0, by_slot[&7].0));
        let h = health(&sup).await;
        let restarts: BTreeMap<u64, u64> = h.iter().map(|w| (w.logical_id, w.restarts)).collect();
        assert_eq!(restarts, BTreeMap::from([(5, 0), (6, 1), (7, 0)]));
        sup.soft_kill().await;
    })
    .await;
}

/// `(pid, GREETING)` of every worker, by logical id: one gated `Env`
/// request per worker, all at once (each stays in flight until the gate
/// opens, so each goes to a different worker: the pick is the fewest in
/// flight).
async fn env_by_slot(sup: &Supervisor) -> BTreeMap<u64, (u32, Option<String>)> {
    let n = health(sup).await.len();
    let key = fresh_key("env");
    let cmd = Cmd::Env {
        name: "GREETING".into(),
        gate: Some(key.clone()),
    };
    let tasks: Vec<_> = (0..n).map(|_| spawn_enqueue(sup, cmd.clone())).collect();
    wait_until("an Env request on every worker", || async {
        let h = health(sup).await;
        h.len() == n && h.iter().all(|w| w.in_flight == 1)
    })
    .await;
    release(sup, &key).await;
    let mut out = BTreeMap::new();
    for r in join_all(tasks).await {
        let (me, value): (Whoami, Option<String>) = r.expect("env").data().unwrap();
        out.insert(me.logical_id, (me.pid, value));
    }
    assert_eq!(out.len(), n, "one answer per worker: {out:?}");
    out
}

#[tokio::test]
async fn a_silent_pool_counts_error_and_warning_lines() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).workers(1).silent(true)),
        )
        .start()
        .await
        .expect("start");
        let print = Cmd::Print {
            stdout: "plain line\nan ERROR on stdout\nwarning: on stdout\nstill plain".into(),
            stderr: "fatal: on stderr\nWARN on stderr\nexception on stderr\nquiet".into(),
        };
        let (resp, _) = whoami_of(&sup, &print).await;
        let h = eventually("the counts", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.id == resp.worker() && h.errors == 3 && h.warnings == 2)
        })
        .await;
        assert_eq!((h.errors, h.warnings), (3, 2));
        let info = sup.inspect().await.unwrap();
        assert_eq!((info.workers[0].errors, info.workers[0].warnings), (3, 2));
        // Plain output counts nothing.
        whoami_of(
            &sup,
            &Cmd::Print {
                stdout: "ok".into(),
                stderr: "fine".into(),
            },
        )
        .await;
        let (_, _) = whoami_of(&sup, &Cmd::Whoami).await;
        let h = health(&sup).await.remove(0);
        assert_eq!((h.errors, h.warnings), (3, 2));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_output_sink_gets_each_line_with_its_worker_and_stream() {
    use std::sync::{Arc, Mutex};

    use nanny::output::{OutputStream, Severity};

    type Seen = Vec<(String, String, OutputStream, Vec<u8>, Severity)>;
    guard(async {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = Arc::clone(&seen);
        let sup = timers(
            Supervisor::builder().pool(Pool::new("web", worker_spec("normal")).workers(1).silent(true)),
        )
        .on_output(move |l| {
            let line = (
                l.pool.to_owned(),
                l.name.to_owned(),
                l.stream,
                l.bytes.to_vec(),
                l.severity,
            );
            sink.lock().unwrap().push(line);
        })
        .start()
        .await
        .expect("start");
        let print = Cmd::Print {
            stdout: "hello out\nan error here".into(),
            stderr: "warning: there".into(),
        };
        let (resp, _) = whoami_of(&sup, &print).await;
        let lines = eventually("three lines in the sink", || async {
            let seen = seen.lock().unwrap();
            let ours: Seen = seen.iter().filter(|l| l.3 != b"").cloned().collect();
            (ours.len() >= 3).then_some(ours)
        })
        .await;
        let find = |text: &[u8]| lines.iter().find(|l| l.3 == text).cloned().expect("the line");
        let out = find(b"hello out");
        assert_eq!(
            (out.0.as_str(), out.1.as_str(), out.2),
            ("web", "web:01", OutputStream::Stdout)
        );
        assert_eq!(out.4, Severity::Plain);
        assert_eq!(find(b"an error here").4, Severity::Error);
        let err = find(b"warning: there");
        assert_eq!((err.2, err.4), (OutputStream::Stderr, Severity::Warning));
        // The sink replaces the tracing events, not the counts.
        let h = health(&sup)
            .await
            .into_iter()
            .find(|h| h.id == resp.worker())
            .unwrap();
        assert_eq!((h.errors, h.warnings), (1, 1));
        sup.soft_kill().await;
    })
    .await;
}
