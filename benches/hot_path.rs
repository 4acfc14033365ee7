//! A fixed amount of work for instruction counting: the hot path of
//! `Supervisor::enqueue` without criterion around it, so that
//! `valgrind --tool=callgrind` counts what one request costs in each
//! process, whatever else the shared machine is doing.
//!
//! ```text
//! cargo bench --bench hot_path --no-run      # prints the binary's path
//! valgrind --tool=callgrind --trace-children=yes \
//!     --callgrind-out-file=cg.%p target/release/deps/hot_path-<hash> [REQUESTS] [OUTSTANDING]
//! callgrind_annotate cg.<pid>                # one file per process
//! ```
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
        support::serve("echo worker", |req| async move {
            let payload: ByteBuf = req.data()?;
            req.respond(&payload)?;
            Ok(())
        });
        return;
    }
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let requests: usize = args.next().map_or(20_000, |a| a.parse().expect("REQUESTS"));
    let outstanding: usize = args.next().map_or(256, |a| a.parse().expect("OUTSTANDING"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let spec = WorkerSpec::current_exe().expect("current exe");
        let supervisor = Supervisor::builder()
            .pool(Pool::default_pool(spec).workers(WORKERS))
            .start()
            .await
            .expect("supervisor starts");
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
            "{requests} requests, {outstanding} outstanding: {:.0} req/s",
            requests as f64 / took.as_secs_f64()
        );
    });
}
