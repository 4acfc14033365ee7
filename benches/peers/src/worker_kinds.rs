//! The workers the nanny rows run, one type per kind: this binary on the
//! Rust worker SDK (on the supervisor's multi-thread runtime or, as
//! `nanny-ct`, on a current-thread runtime shared with the caller), Node
//! processes on `sdk/node` (`nanny-node`), an LPM `worker.js` on
//! `sdk/node/lpm` (`nanny-lpm`) and Python processes on `sdk/python`
//! (`nanny-python`); [`CurrentThread`] puts any of them on one
//! current-thread runtime (`nanny-ct`). Each says how a worker is started and what a correct
//! answer to a payload of `size` bytes looks like.

use std::marker::PhantomData;
use std::path::PathBuf;

use nanny::{Response, WorkerSpec};
use serde_bytes::ByteBuf;

/// One kind of worker for [`crate::nanny_peer::Nanny`].
pub trait WorkerKind {
    /// The caller and the supervisor share one current-thread runtime.
    const CURRENT_THREAD: bool = false;

    /// The low-latency window (`Builder::spin_before_park`), if any.
    const SPIN: Option<std::time::Duration> = None;

    /// How to start one worker.
    fn spec() -> WorkerSpec;

    /// Panics unless `answer` is a correct answer to a payload of `size` bytes.
    fn check(answer: &Response, size: usize) {
        assert_eq!(answer.raw().len(), encoded_len(size), "the answer is the echo");
    }
}

/// This binary on the Rust worker SDK; the supervisor on a multi-thread runtime.
#[derive(Debug)]
pub struct Rust;

/// Workers of kind `K`, with the caller and the supervisor on one
/// current-thread runtime (the low-latency configuration).
#[derive(Debug)]
pub struct CurrentThread<K>(PhantomData<K>);

/// Workers of kind `K` on one current-thread runtime with the caller and
/// the supervisor, in the low-latency mode: `spin_before_park(300 µs)`.
#[derive(Debug)]
pub struct Spinning<K>(PhantomData<K>);

/// `node node/nanny-sdk-worker.js`: the Node SDK's own API.
#[derive(Debug)]
pub struct Node;

/// `node node/nanny-lpm-worker.js`: `lpm-worker.js` with one changed
/// require line, answering `[pid, payload]`.
#[derive(Debug)]
pub struct Lpm;

/// `$NANNY_PYTHON python/nanny_sdk_worker.py`: the Python SDK on asyncio.
#[derive(Debug)]
pub struct Python;

impl WorkerKind for Rust {
    fn spec() -> WorkerSpec {
        WorkerSpec::current_exe().expect("current exe")
    }
}

impl<K: WorkerKind> WorkerKind for CurrentThread<K> {
    const CURRENT_THREAD: bool = true;

    fn spec() -> WorkerSpec {
        K::spec()
    }

    fn check(answer: &Response, size: usize) {
        K::check(answer, size);
    }
}

impl<K: WorkerKind> WorkerKind for Spinning<K> {
    const CURRENT_THREAD: bool = true;
    const SPIN: Option<std::time::Duration> = Some(std::time::Duration::from_micros(300));

    fn spec() -> WorkerSpec {
        K::spec()
    }

    fn check(answer: &Response, size: usize) {
        K::check(answer, size);
    }
}

impl WorkerKind for Node {
    fn spec() -> WorkerSpec {
        WorkerSpec::new("node").arg(script("node/nanny-sdk-worker.js"))
    }
}

impl WorkerKind for Lpm {
    fn spec() -> WorkerSpec {
        WorkerSpec::new("node").arg(script("node/nanny-lpm-worker.js"))
    }

    fn check(answer: &Response, size: usize) {
        let (_pid, data): (u32, ByteBuf) = answer.data().expect("an answer of [pid, payload]");
        assert_eq!(data.len(), size, "the answer carries the payload back");
    }
}

impl WorkerKind for Python {
    fn spec() -> WorkerSpec {
        WorkerSpec::new(python())
            .arg(script("python/nanny_sdk_worker.py"))
            .env("PYTHONPATH", repo().join("sdk/python"))
    }
}

/// The repository root (this crate is `benches/peers` in it).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A worker script of this crate, by its path under `benches/peers`.
fn script(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `$NANNY_PYTHON`, else the repository's `target/sdk-venv` (what
/// `scripts/test` and `run.sh` make); a Python with `msgpack`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("NANNY_PYTHON") {
        return python.into();
    }
    let venv = repo().join("target/sdk-venv/bin/python");
    assert!(
        venv.exists(),
        "nanny-python needs a Python with msgpack: set NANNY_PYTHON or run scripts/test (it makes {})",
        venv.display()
    );
    venv
}

/// MessagePack size of a `bin` of `len` bytes: what an echo answers.
pub fn encoded_len(len: usize) -> usize {
    match len {
        0..=0xff => len + 2,
        0x100..=0xffff => len + 3,
        _ => len + 5,
    }
}
