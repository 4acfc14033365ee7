//! The verbs' exit codes where there is no healthy nanny to talk to: none
//! at all (69, with how to start one), a killed one's stale `api.json`
//! (69, with how to restart it), one that never answers (75); a bad command
//! line (2); and the completion scripts, which need no nanny.

use super::*;

#[test]
fn without_a_running_nanny_the_verbs_say_how_to_start_one() {
    let dir = std::env::temp_dir().join(format!("nanny-run-{}-verbs-none", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = cli(&dir, &["status"]);
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(out.stderr.contains("nanny run nanny.toml"), "{}", out.stderr);
    // An address with nothing behind it: unreachable too.
    let out = cli_env(
        &dir,
        &["status"],
        &[("NANNY_API_URL", "http://127.0.0.1:1"), ("NANNY_API_TOKEN", "t")],
    );
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(out.stderr.contains("http://127.0.0.1:1"), "{}", out.stderr);
    // A URL without a token: the message names what is missing.
    let out = cli_env(&dir, &["status"], &[("NANNY_API_URL", "http://127.0.0.1:1")]);
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(out.stderr.contains("no token for the API"), "{}", out.stderr);
    assert!(out.stderr.contains("NANNY_API_TOKEN"), "{}", out.stderr);
    let usage = cli(&dir, &["scale", "web"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let zero = cli(&dir, &["scale", "web", "0"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn after_a_kill_the_stale_api_json_is_named_with_how_to_restart() {
    let file = config("verbs-stale", WEB);
    let dir = file.parent().unwrap();
    let nanny = Nanny::start(&["run"], &file);
    discovery(&file);
    let worker = pid(dir, "web:01");
    nanny.signal("KILL");
    nanny.wait();
    assert!(
        dir.join(".nanny/api.json").exists(),
        "a killed nanny cannot remove it"
    );
    let out = cli(dir, &["status"]);
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(out.stderr.contains("is not running"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("nanny run {}", file.display())),
        "{}",
        out.stderr
    );
    // Its workers die with it (PR_SET_PDEATHSIG).
    within(|| (!alive(worker as u32)).then_some(()), "the worker to die");
}

#[test]
fn an_api_that_does_not_answer_times_out_with_75() {
    // A socket that accepts (the kernel completes the handshake) and never
    // answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let env = [("NANNY_API_URL", url.as_str()), ("NANNY_API_TOKEN", "t")];
    for verb in [&["status"][..], &["stop", "web:01"], &["logs", "--follow"]] {
        let args = [&["--timeout", "1"][..], verb].concat();
        let out = cli_env(&std::env::temp_dir(), &args, &env);
        assert_eq!(out.code, 75, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("did not answer in time"), "{}", out.stderr);
        assert!(out.stderr.contains(&url), "{}", out.stderr);
    }
}

#[test]
fn completions_print_a_script_for_the_shell() {
    let bash = ok(&std::env::temp_dir(), &["completions", "bash"]);
    assert!(bash.contains("complete -F _nanny"), "{bash}");
    assert!(bash.contains("reload") && bash.contains("stop-all"), "{bash}");
    let zsh = ok(&std::env::temp_dir(), &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef nanny"), "{zsh}");
}
