//! The SDKs under test: how each one's conformance worker is started, and
//! what every test shares (a supervisor of a few of them, the directory of
//! their kill hooks' marks).

use std::path::{Path, PathBuf};

use nanny::{Builder, Error, FdChannelFlavor, Response, Supervisor, WorkerSpec};

use crate::support::conformance::{mark_name, Identity, Op, DIR_ENV};
use crate::support::runtimes::{node, python, repo, repo_file};
use crate::support::{builder_with, worker_spec};

/// One SDK's conformance worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// The Rust SDK: the test worker's `conformance` mode.
    Rust,
    /// The Node SDK: `sdk/node/test/conformance-worker.js`.
    Node,
    /// The Python SDK: `sdk/python/tests/conformance_worker.py`.
    Python,
}

impl Lang {
    /// The language a test is named after.
    pub(crate) fn named(name: &str) -> Self {
        match name {
            "rust" => Lang::Rust,
            "node" => Lang::Node,
            "python" => Lang::Python,
            other => panic!("no conformance worker for {other:?}"),
        }
    }

    /// What the worker calls its language (in `whoami` and the attachment line).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Node => "node",
            Lang::Python => "python",
        }
    }

    /// How its SDK takes descriptors: Node reads them on Node's own IPC
    /// channel (`fd_channel = "node"`), the others on the seqpacket one.
    pub(crate) fn fd_channel(self) -> FdChannelFlavor {
        match self {
            Lang::Node => FdChannelFlavor::Node,
            Lang::Rust | Lang::Python => FdChannelFlavor::SeqPacket,
        }
    }

    /// How its worker is started.
    pub(crate) fn spec(self) -> WorkerSpec {
        match self {
            Lang::Rust => worker_spec("conformance"),
            Lang::Node => node_spec("sdk/node/test/conformance-worker.js"),
            Lang::Python => WorkerSpec::new(python())
                .arg(repo_file("sdk/python/tests/conformance_worker.py"))
                .env("PYTHONPATH", repo().join("sdk/python")),
        }
    }
}

/// `node <script>`, a script of the repository.
pub(crate) fn node_spec(script: &str) -> WorkerSpec {
    WorkerSpec::new(node()).arg(repo_file(script))
}

/// A supervisor of conformance workers and the directory of their marks.
pub(crate) struct Pool {
    pub(crate) sup: Supervisor,
    pub(crate) marks: Marks,
}

impl Pool {
    /// A started supervisor of `n` workers of `lang`, with the suite's
    /// short timers and `lang`'s [`Lang::fd_channel`], after `tune` (extra
    /// settings).
    pub(crate) async fn start(lang: Lang, n: usize, tune: impl FnOnce(Builder) -> Builder) -> Self {
        Self::start_spec(lang.spec(), lang, n, tune).await
    }

    /// [`start`](Self::start) for another program than the conformance
    /// worker, in `lang`'s SDK: its pool has `lang`'s [`Lang::fd_channel`].
    pub(crate) async fn start_spec(
        spec: WorkerSpec,
        lang: Lang,
        n: usize,
        tune: impl FnOnce(Builder) -> Builder,
    ) -> Self {
        let marks = Marks::new(lang);
        let spec = spec.env(DIR_ENV, marks.dir()).fd_channel(lang.fd_channel());
        let sup = tune(builder_with(spec, n))
            .start()
            .await
            .unwrap_or_else(|e| panic!("{n} {} conformance workers start: {e}", lang.name()));
        Self { sup, marks }
    }

    /// Enqueues `op`; panics on an error.
    pub(crate) async fn ask(&self, op: &Op) -> Response {
        self.sup
            .enqueue(op)
            .await
            .unwrap_or_else(|e| panic!("{op:?} failed: {e}"))
    }

    /// Enqueues `op`, expecting a remote error; returns its kind and message.
    pub(crate) async fn ask_err<T: serde::Serialize + std::fmt::Debug + ?Sized>(
        &self,
        op: &T,
    ) -> (String, String) {
        match self.sup.enqueue(op).await {
            Err(Error::Handler(e)) => (e.kind, e.message),
            other => panic!("{op:?}: expected a remote error, got {other:?}"),
        }
    }

    /// Asks `whoami`.
    pub(crate) async fn whoami(&self) -> (Response, Identity) {
        let resp = self.ask(&Op::Whoami).await;
        let me = resp.data().expect("an identity");
        (resp, me)
    }
}

/// A directory of its own for one test's kill-hook marks, removed at the end.
pub(crate) struct Marks(PathBuf);

impl Marks {
    fn new(lang: Lang) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "nanny-conformance-{}-{}-{n}",
            std::process::id(),
            lang.name()
        ));
        std::fs::create_dir_all(&dir).expect("a marks directory");
        Self(dir)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.0
    }

    /// The content of worker `id`'s `hook` mark, if it wrote one.
    pub(crate) fn read(&self, id: nanny::WorkerId, hook: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(mark_name(id.get(), hook))).ok()
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
