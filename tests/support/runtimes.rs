//! The Node and Python SDKs' test programs, as the suites start them: the
//! interpreters and the packages `scripts/test` installs. A missing one
//! fails the test that needs it, saying what to run (never a skip).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root.
pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, which must exist.
pub(crate) fn repo_file(path: &str) -> PathBuf {
    let file = repo().join(path);
    assert!(file.exists(), "{path} is missing from the repository");
    file
}

/// The Python interpreter of the SDK tests: `NANNY_PYTHON`, else the
/// virtual environment `scripts/test` makes (`target/sdk-venv`), checked
/// once to import `msgpack`.
pub(crate) fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let venv = repo().join("target/sdk-venv/bin/python");
            let python = std::env::var_os("NANNY_PYTHON").map_or(venv, PathBuf::from);
            assert!(
                python.exists(),
                "no Python for the SDK tests at {}: run scripts/test, or set NANNY_PYTHON to a python with msgpack",
                python.display()
            );
            check(&python, &["-c", "import msgpack"], "a python with msgpack (scripts/test makes target/sdk-venv)");
            python
        })
        .clone()
}

/// `node` from `PATH`, checked once to run, with the Node SDK's
/// dependencies installed (`sdk/node/node_modules`).
pub(crate) fn node() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let node = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join("node"))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("no `node` in PATH: install Node.js >= 18 (scripts/test does, as root)"));
            check(&node, &["--version"], "Node.js >= 18");
            assert!(
                repo().join("sdk/node/node_modules/@msgpack/msgpack").is_dir(),
                "the Node SDK's dependencies are not installed: run `npm ci --prefix sdk/node` (scripts/test does)"
            );
            node
        })
        .clone()
}

/// Runs `program args`; panics, naming `what` is needed, unless it succeeds.
fn check(program: &Path, args: &[&str], what: &str) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; the tests need {what}", program.display()));
    assert!(
        out.status.success(),
        "`{} {}` failed ({}): {}; the tests need {what}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
