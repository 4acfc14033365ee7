//! The interpreters of the SDKs in other languages, for the tests that run
//! their workers. `scripts/test` installs them; a test that needs one and
//! finds none fails, saying how to get it (it never skips).

use std::path::PathBuf;

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with `msgpack` the SDK tests use: `NANNY_PYTHON`, else the
/// virtual environment `scripts/test` makes (`target/sdk-venv`).
pub(crate) fn python() -> PathBuf {
    let venv = repo().join("target/sdk-venv/bin/python");
    let python = std::env::var_os("NANNY_PYTHON").map_or(venv, PathBuf::from);
    assert!(
        python.exists(),
        "no Python for the SDK tests at {}: run scripts/test, or set NANNY_PYTHON to a python with msgpack",
        python.display()
    );
    python
}

/// `node`, with the Node SDK's dependencies installed (`npm ci --prefix sdk/node`).
pub(crate) fn node() -> PathBuf {
    let modules = repo().join("sdk/node/node_modules");
    assert!(
        modules.exists(),
        "no {}: run scripts/test (npm ci --prefix sdk/node)",
        modules.display()
    );
    PathBuf::from("node")
}
