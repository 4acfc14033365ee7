//! Spawning out of descriptors (`EMFILE`): a management call's spawn fails
//! with a typed [`Error::StartFailed`], a dead worker's replacement fails
//! once per `restart_delay` (a counted failed start, never a loop that
//! spins a core), `enqueue` answers with typed errors (`QueueFull` past
//! the bound, `Deadline` for a request that cannot wait), and once
//! descriptors are free again the slot is filled, the queued requests
//! are served, and no descriptor a failed spawn took is left open. In a
//! binary of its own: it lowers the whole process's descriptor limit.

#[path = "support/mod.rs"]
mod support;

use std::fs::File;
use std::sync::Mutex;
use std::time::Duration;

use nanny::manage::StartFailure;
use nanny::{EnqueueOptions, Error, Event, DEFAULT_POOL};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use support::*;

/// Requests the pool's queue holds (`max_queue`).
const QUEUE: usize = 4;

/// The open descriptors of this process.
fn open_fds() -> usize {
    fd_targets().values().sum()
}

/// Files on `/dev/null` that hold every descriptor the limit leaves.
struct Filler(Mutex<Vec<File>>);

impl Filler {
    /// Lowers the limit to what is open now and 16 more, and takes those.
    fn exhaust() -> Self {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        setrlimit(Resource::RLIMIT_NOFILE, open + 16, hard).expect("setrlimit");
        let filler = Filler(Mutex::new(Vec::new()));
        filler.top_up();
        filler
    }

    /// Takes any descriptor the process freed meanwhile (the runtime and
    /// the supervisor open and close some).
    fn top_up(&self) {
        let mut files = self.0.lock().unwrap();
        while let Ok(file) = File::open("/dev/null") {
            files.push(file);
        }
    }
}

fn failed_spawns(events: &Events) -> usize {
    events.count(|e| matches!(e, Event::SpawnFailed { error, .. } if error.contains("Too many open files")))
}

#[tokio::test]
async fn emfile_fails_spawns_typed_without_spinning_and_they_recover() {
    guard(async {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let sup = builder(1)
            .restart_delay(Duration::from_millis(200))
            .max_restarts(1000)
            .max_queue(QUEUE)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let victim = all_ready(&sup, 1).await[0].pid;
        sup.enqueue(&Cmd::Double(1)).await.expect("served before");
        let before = open_fds();

        let filler = Filler::exhaust();
        // A management call: its spawn fails, typed, and its slot goes.
        let added = sup.add_worker(DEFAULT_POOL).await;
        assert!(
            matches!(&added, Err(Error::StartFailed { reason: StartFailure::Spawn(e), .. }) if e.contains("Too many open files")),
            "got {added:?}"
        );
        // The worker dies: each try to replace it fails after a delay.
        sigkill(victim);
        wait_until("three failed restarts", || {
            filler.top_up();
            async { failed_spawns(&events) >= 4 }
        })
        .await;
        let failures = failed_spawns(&events);
        let restarts = events.count(|e| matches!(e, Event::WorkerRestarting { .. }));
        assert!(
            failures <= restarts + 1,
            "one failure per restart and the call's: {failures} failures, {restarts} restarts"
        );
        // Requests meanwhile: one that cannot wait fails at its deadline;
        // the rest are queued up to the bound, and fail at once past it.
        let hurried = (sup.enqueue_with(&Cmd::Double(9), EnqueueOptions::new().deadline(Duration::from_millis(100))))
            .await;
        assert!(matches!(hurried, Err(Error::Deadline)), "got {hurried:?}");
        let queued: Vec<_> = (0..QUEUE as u64).map(|i| spawn_enqueue(&sup, Cmd::Double(i))).collect();
        load(&sup, 0, QUEUE).await;
        let full = sup.enqueue(&Cmd::Double(9)).await;
        assert!(matches!(full, Err(Error::QueueFull { .. })), "got {full:?}");
        assert!(!sup.inspect().await.unwrap().pools[0].failed, "the pool failed");

        // Descriptors back: the slot is filled and the queue served.
        drop(filler);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
        for (i, r) in join_all(queued).await.into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("queued request {i}: {e}"));
            assert_eq!(r.data::<u64>().unwrap(), 2 * i as u64);
        }
        assert_eq!(all_ready(&sup, 1).await.len(), 1, "the added slot was removed");
        assert_eq!(open_fds(), before, "a failed spawn left descriptors open: {:?}", fd_targets());
        eprintln!("{failures} failed spawns over {restarts} restarts, then served");
        sup.soft_kill().await;
    })
    .await;
}
