//! The exit codes of `nanny::exit`, from a host program (the fixture's
//! `supervise` mode) that cannot start. The codes after a stop by signal
//! are checked with the signal tests in `lifecycle`.

use crate::support::*;

/// Runs `supervise ARGS…` with workers in `mode`, which must exit without
/// being told anything; returns its exit code.
async fn exit_code_of(mode: &str, args: &[&str]) -> Option<i32> {
    let status = within(
        "the supervise mode's exit",
        tokio::process::Command::new(WORKER)
            .arg("supervise")
            .args(args)
            .env("TEST_MODE", mode)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .expect("run the supervise mode");
    status.code()
}

#[tokio::test]
async fn a_bad_configuration_exits_78_and_a_failed_start_69() {
    guard(async {
        // Zero workers: `ConfigError::ZeroWorkers`, nothing spawned.
        assert_eq!(
            exit_code_of("normal", &["0", "signals"]).await,
            Some(nanny::exit::CONFIG)
        );
        assert_eq!(nanny::exit::CONFIG, 78);
        // Workers that crash at once, no restart budget: the pool fails.
        let failed = exit_code_of("crash-on-start", &["1", "signals", "max-restarts=0"]).await;
        assert_eq!(failed, Some(nanny::exit::UNAVAILABLE));
        assert_eq!(nanny::exit::UNAVAILABLE, 69);
    })
    .await;
}
