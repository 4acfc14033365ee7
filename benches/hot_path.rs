//! A fixed amount of work for instruction counting: the hot path of
//! `Supervisor::enqueue` without criterion around it, so that
//! `valgrind --tool=callgrind` counts what one request costs in each
//! process, whatever else the shared machine is doing.
//!
//! ```text
//! cargo bench --bench hot_path --no-run      # prints the binary's path
//! valgrind --tool=callgrind --trace-children=yes \
//!     --callgrind-out-file=cg.%p target/release/deps/hot_path-<hash> [REQUESTS] [OUTSTANDING] [RUNTIME]
//! callgrind_annotate cg.<pid>                # one file per process
//! ```
//!
//! RUNTIME is where the caller and the supervisor run: `multi` (default:
//! both on one multi-thread runtime), `current` (both on one
//! current-thread runtime) or `apart` (the caller on a multi-thread
//! runtime, the supervisor on a current-thread runtime of its own thread).
//!
//! It starts 2 echo workers (this same binary: self-fork), sends
//! `REQUESTS` (default 20 000) 100-byte payloads with `OUTSTANDING`
//! (default 256) in flight through the ordinary `enqueue` API, checks
//! every answer, and stops the supervisor. Run without valgrind it prints
//! the rate, which on this noisy machine is only a smoke figure.

use std::time::Instant;

use futures::StreamExt;
use nanny::{Pool, Supervisor, WorkerSpec};
use serde_bytes::ByteBuf;

mod support;

const WORKERS: usize = 2;
const PAYLOAD: usize = 100;

fn main() {
    if nanny_worker::is_worker() {
        support::serve_echo();
        return;
    }
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let requests: usize = args.next().map_or(20_000, |a| a.parse().expect("REQUESTS"));
    let outstanding: usize = args.next().map_or(256, |a| a.parse().expect("OUTSTANDING"));
    let runtime = args.next().unwrap_or_else(|| "multi".into());
    let caller = match runtime.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread(),
        "multi" | "apart" => tokio::runtime::Builder::new_multi_thread(),
        other => panic!("RUNTIME is multi, current or apart, not {other:?}"),
    }
    .enable_all()
    .build()
    .expect("runtime");
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    let (supervisor, own_thread) = if runtime == "apart" {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                tx.send(start().await).expect("the caller waits");
                // Serve until the caller's soft kill has run its course.
                let _ = stopped.await;
            });
        });
        (rx.recv().expect("a supervisor"), Some(thread))
    } else {
        (caller.block_on(start()), None)
    };
    caller.block_on(async {
        let payload = ByteBuf::from(vec![7u8; PAYLOAD]);
        let started = Instant::now();
        let answered = futures::stream::iter(0..requests)
            .map(|_| supervisor.enqueue(&payload))
            .buffer_unordered(outstanding)
            .fold(0usize, |n, r| async move {
                let r = r.expect("answer");
                // MessagePack bin 8: a two-byte header, then the bytes.
                assert_eq!(r.raw().len(), PAYLOAD + 2, "an echo of the payload");
                n + 1
            })
            .await;
        let took = started.elapsed();
        assert_eq!(answered, requests);
        supervisor.soft_kill().await;
        println!(
            "{requests} requests, {outstanding} outstanding, {runtime}: {:.0} req/s",
            requests as f64 / took.as_secs_f64()
        );
    });
    drop(supervisor);
    let _ = done.send(());
    if let Some(thread) = own_thread {
        thread.join().expect("the supervisor's thread");
    }
}

async fn start() -> Supervisor {
    let spec = WorkerSpec::current_exe().expect("current exe");
    Supervisor::builder()
        .pool(Pool::default_pool(spec).workers(WORKERS))
        .start()
        .await
        .expect("supervisor starts")
}
