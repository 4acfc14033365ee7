//! The conformance suite of issue 15: the same checks, by the same code,
//! against the conformance worker of every SDK (contract C; the requests
//! are in `tests/support/conformance.rs`): the Rust test worker's
//! `conformance` mode, `node sdk/node/test/conformance-worker.js` and
//! `python sdk/python/tests/conformance_worker.py`, and the
//! load-process-manager layer's `sdk/node/test/lpm-worker.js`. Each
//! language's pools get its flavour of the fd channel
//! ([`langs::Lang::fd_channel`]): Node's is `FdChannelFlavor::Node`.
//!
//! [`conformance!`] makes one test per behaviour per language, named
//! `conformance::<module>::<behaviour>::<lang>`, so
//! `cargo test --test integration conformance::` runs the suite and a
//! name's end (`::node`) one language. A missing `node`, `sdk/node/node_modules` or Python
//! venv fails the tests that need it, saying what to run (`scripts/test`
//! installs them); nothing is skipped.
//!
//! The rules of the integration suite hold: real processes, sockets and
//! signals; no timing assertions (states, counts and bytes only); every
//! body under [`crate::support::guard`].

mod basics;
mod capabilities;
mod langs;
mod lifecycle;
mod lpm;

/// One test per language for each behaviour: `conformance!(behaviour:
/// [rust, node, python])` makes `mod behaviour { fn rust() … }`, each
/// calling `super::behaviour(Lang::…)` under the guard.
macro_rules! conformance {
    ($($behaviour:ident: [$($lang:ident),+ $(,)?];)+) => {
        $(
            mod $behaviour {
                $(
                    #[tokio::test]
                    async fn $lang() {
                        let lang = crate::conformance::langs::Lang::named(stringify!($lang));
                        crate::support::guard(super::$behaviour(lang)).await;
                    }
                )+
            }
        )+
    };
}
use conformance;
