//! The file's parsing and checks, good and bad: every error kind names the
//! file and, where it can, the line and column.

use std::path::{Path, PathBuf};

use super::*;

pub(super) fn load_str(text: &str) -> Result<Loaded, FileError> {
    load_in(text, Path::new("/srv/app"))
}

fn load_in(text: &str, dir: &Path) -> Result<Loaded, FileError> {
    let source = Source {
        path: PathBuf::from("nanny.toml"),
        text: text.to_owned(),
    };
    parse(source, dir)
}

/// The error the library's validation finds in a file that parses.
pub(super) fn semantic(text: &str) -> FileError {
    let loaded = load_str(text).expect("the file parses");
    match loaded.builder.clone().spawn() {
        Err(nanny::StartError::Config(e)) => loaded.locate(&e),
        other => panic!("expected a config error, got {other:?}"),
    }
}

pub(super) fn err(text: &str) -> FileError {
    load_str(text).expect_err("the file is refused")
}

const EVERY_KEY: &str = r#"
[supervisor]
pulse = "250ms"
max_queue = 100
request_timeout = "2s"
retries = "unlimited"
max_frame_len = "1MiB"
health_events = 0
event_capacity = 64
server_restart_delay = "2s"
process_title = "myapp"
allow_worker_shutdown = true
contain_descendants = false
init_program = "bin/nanny-init"
start_timeout = "10s"
drain_timeout = "none"
force_stop_delay = "3s"
restart_backoff = "200ms"
max_restarts = 7
restart_window = "1m"
unhealthy_timeout = "4s"
reload_delay = "1s"
max_rss = "1GiB"
log_dir = "/var/log/nanny"
log_max_size = "1MiB"
log_max_total = "8MiB"

[[pool]]
name = "web"
command = "sh"
args = ["-c", "exec sleep 1000"]
cwd = "www"
env = { MODE = "prod" }
workers = 2
logical_ids = [10, 20]
concurrency = 8
silent = true
restart = "on-failure"
respawn_count = 3
max_requests = 1000
max_requests_jitter = 50
max_request_duration = "30s"
cpu_affinity = [0]
readiness = { http = { addr = "127.0.0.1:8080", path = "/ready" } }
allow_kill = true
allow_spawn = 4
allow_spawn_args = ["--mode="]
fd_channel = "node"
restart_delay = "1s"
drain_timeout = "5s"
unhealthy_timeout = "none"
max_rss = "700MB"
encoding = "latin1"
log_dir = "web-logs"
log_max_size = "2MiB"
log_max_total = "16MiB"

[[pool]]
name = "static"
command = "./bin/server"
plain = true
readiness = { tcp = "127.0.0.1:8081" }

[[listener]]
tcp = "127.0.0.1:8080"
pool = "web"
name = "http"
backlog = 16
listen_backlog = 64
sticky_by_peer_ip = true

[[listener]]
unix = "run/static.sock"
pool = "static"
socket_activation = true
"#;

#[test]
fn a_file_with_every_key_loads_with_its_values() {
    let loaded = load_str(EVERY_KEY).expect("loads");
    let debug = format!("{:?}", loaded.builder);
    for want in [
        "pulse: 250ms",
        "max_queue: 100",
        "Unlimited",
        "max_frame_len: 1048576",
        "\"MODE\"",
        "\"/srv/app/www\"",
        "\"/srv/app/./bin/server\"",
        "\"/srv/app/run/static.sock\"",
        "OnFailure",
        "is_healthy(..)",
        "/ready",
        "fd_channel: Node",
    ] {
        assert!(debug.contains(want), "{want} missing from {debug}");
    }
    assert_eq!(loaded.pools.len(), 2);
    assert_eq!(loaded.listeners[0].0, "http");
    let web = &loaded.logs[0];
    assert_eq!(format!("{:?}", web.decoder), "windows-1252");
    let file = web.file.as_ref().expect("silent: a file");
    assert_eq!(file.dir, Path::new("/srv/app/web-logs"));
    assert_eq!((file.max_size, file.max_total), (2 << 20, 16 << 20));
    assert_eq!(loaded.logs[1].file, None, "not silent");
}

#[test]
fn nanny_run_bounds_the_drain_unless_the_file_says_otherwise() {
    let pool = "[[pool]]\ncommand = \"sleep\"\n";
    let debug = format!("{:?}", load_str(pool).unwrap().builder);
    assert!(
        debug.contains(&format!("drain_timeout: Some({RUN_DRAIN_TIMEOUT:?})")),
        "{debug}"
    );
    let none = format!("[supervisor]\ndrain_timeout = \"none\"\n{pool}");
    let debug = format!("{:?}", load_str(&none).unwrap().builder);
    assert!(debug.contains("drain_timeout: None"), "{debug}");
}

#[test]
fn a_syntax_error_has_line_and_column() {
    let e = err("[[pool]\ncommand = \"x\"\n");
    assert_eq!(e.at, Some((1, 8)), "{e}");
    assert!(e.to_string().starts_with("nanny.toml:1:8: "), "{e}");
    let e = err("[[pool]]\ncommand = \"x\n");
    assert_eq!(e.at.map(|a| a.0), Some(2), "{e}");
}

#[test]
fn an_unknown_key_is_an_error_with_its_place() {
    let e = err("[[pool]]\ncommand = \"sleep\"\nplian = true\n");
    assert_eq!(e.at, Some((3, 1)), "{e}");
    assert!(e.message.contains("unknown field `plian`"), "{e}");
    assert!(e.message.contains("`plain`"), "the expected keys are listed: {e}");
    let e = err("[supervisor]\npuls = \"1s\"\n");
    assert_eq!(e.at, Some((2, 1)), "{e}");
    let e = err("[pools]\n");
    assert!(e.message.contains("unknown field `pools`"), "{e}");
}

#[test]
fn a_bad_duration_or_size_says_what_was_expected_where() {
    let e = err("[[pool]]\ncommand = \"sleep\"\nrestart_delay = \"5 parsecs\"\n");
    assert_eq!(e.at, Some((3, 17)), "{e}");
    assert!(e.message.contains("expected a duration such as \"500ms\""), "{e}");
    let e = err("[[pool]]\ncommand = \"sleep\"\nmax_rss = \"lots\"\n");
    assert_eq!(e.at, Some((3, 11)), "{e}");
    assert!(e.message.contains("expected a size such as"), "{e}");
    let e = err("[supervisor]\ndrain_timeout = \"never\"\n");
    assert!(e.message.contains("or \"none\""), "{e}");
    let e = err("[supervisor]\npulse = 5\n");
    assert_eq!(e.at, Some((2, 9)), "{e}");
}

#[test]
fn a_bad_enum_value_names_the_variants() {
    let e = err("[[pool]]\ncommand = \"sleep\"\nrestart = \"sometimes\"\n");
    assert_eq!(e.at, Some((3, 11)), "{e}");
    assert!(e.message.contains("unknown variant `sometimes`"), "{e}");
    assert!(e.message.contains("`on-failure`"), "{e}");
    let e = err("[[pool]]\ncommand = \"sleep\"\nreadiness = { ping = \"x\" }\n");
    assert!(e.message.contains("unknown variant `ping`"), "{e}");
    let e = err("[[pool]]\ncommand = \"sleep\"\nfd_channel = \"pipe\"\n");
    assert_eq!(e.at, Some((3, 14)), "{e}");
    assert!(e.message.contains("expected `seqpacket` or `node`"), "{e}");
    let e = err("[supervisor]\nretries = \"many\"\n");
    assert!(e.message.contains("\"unlimited\""), "{e}");
}

#[test]
fn a_bad_address_is_placed() {
    let e = err("[[listener]]\ntcp = \"localhost\"\n");
    assert_eq!(e.at, Some((2, 7)), "{e}");
}

#[test]
fn a_library_config_error_names_the_pool_and_points_at_its_table() {
    let e = semantic("[[pool]]\nname = \"a\"\ncommand = \"sleep\"\n\n[[pool]]\nname = \"b\"\ncommand = \"sleep\"\nworkers = 0\n");
    assert_eq!(e.message, "pool \"b\" has zero workers");
    assert_eq!(e.at, Some((5, 1)), "{e}");
    let e = semantic("[[pool]]\ncommand = \"sleep\"\nplain = true\n[[listener]]\ntcp = \"127.0.0.1:0\"\n");
    assert!(e.message.contains("runs plain programs"), "{e}");
    assert_eq!(e.at, Some((4, 1)), "the listener's table: {e}");
    let e = semantic("[[pool]]\ncommand = \"sleep\"\nplain = true\nfd_channel = \"node\"\n");
    assert!(e.message.contains("get no fd channel"), "{e}");
    assert_eq!(e.at, Some((1, 1)), "the pool's table: {e}");
    let e = semantic("[[pool]]\nname = \"x\"\ncommand = \"./no-such-program\"\n");
    assert!(e.message.contains("/srv/app/./no-such-program not found"), "{e}");
    let e = semantic("");
    assert!(e.message.contains("no pool configured"), "{e}");
    assert_eq!(e.at, None);
}

#[test]
fn the_files_own_checks_name_the_pool_or_listener() {
    let e = err("[[pool]]\nname = \"p\"\ncommand = \"sleep\"\nmax_requests_jitter = 5\n");
    assert_eq!(e.message, "pool \"p\": max_requests_jitter needs max_requests");
    assert_eq!(e.at, Some((1, 1)));
    let e = err("[[pool]]\ncommand = \"sleep\"\nrestart_delay = \"1s\"\nrestart_backoff = \"1s\"\n");
    assert!(e.message.contains("exclude each other"), "{e}");
    let e = err("[[pool]]\ncommand = \"sleep\"\n[[listener]]\npool = \"default\"\n");
    assert!(e.message.contains("exactly one of `tcp`"), "{e}");
    assert_eq!(e.at, Some((3, 1)));
}

#[test]
fn env_file_is_read_from_the_files_directory_and_env_wins() {
    let dir = scratch("env-ok");
    std::fs::write(dir.join("app.env"), "# settings\nFROM_FILE=1\nBOTH=file\n").unwrap();
    let text = "[[pool]]\ncommand = \"sleep\"\nenv_file = \"app.env\"\nenv = { BOTH = \"table\" }\n";
    let debug = format!("{:?}", load_in(text, &dir).unwrap().builder);
    assert!(debug.contains("(\"FROM_FILE\", \"1\")"), "{debug}");
    let file_then_table = debug
        .find("(\"BOTH\", \"file\")")
        .zip(debug.find("(\"BOTH\", \"table\")"));
    assert!(
        file_then_table.is_some_and(|(f, t)| f < t),
        "env applied after env_file: {debug}"
    );
}

#[test]
fn a_bad_or_missing_env_file_names_its_line_and_the_pool() {
    let dir = scratch("env-bad");
    std::fs::write(dir.join("bad.env"), "A=1\nnonsense\n").unwrap();
    let text = "[[pool]]\nname = \"w\"\ncommand = \"sleep\"\nenv_file = \"bad.env\"\n";
    let e = load_in(text, &dir).unwrap_err();
    assert!(e.message.starts_with("pool \"w\": env_file "), "{e}");
    assert!(e.message.contains("bad.env:2: expected KEY=VALUE"), "{e}");
    let text = "[[pool]]\nname = \"w\"\ncommand = \"sleep\"\nenv_file = \"missing.env\"\n";
    let e = load_in(text, &dir).unwrap_err();
    assert!(e.message.contains("missing.env: No such file"), "{e}");
}

#[test]
fn a_missing_file_is_a_file_error() {
    let e = load(Path::new("/nonexistent/nanny.toml")).unwrap_err();
    assert_eq!(e.at, None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/nanny.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn line_col_counts_characters_from_one() {
    assert_eq!(line_col("abc", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é\nx", 3), (2, 1));
    assert_eq!(line_col("éx", 2), (1, 2));
}

/// A fresh directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nanny-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_example_file_loads_with_its_commands_from_its_directory() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nanny.toml");
    let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.pools.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["app", "static"]
    );
    let debug = format!("{:?}", loaded.builder);
    assert!(
        debug.contains("examples/../target/debug/examples/axum_worker"),
        "{debug}"
    );
}

#[test]
fn the_readme_example_loads() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme
        .split("## The `nanny` command")
        .nth(1)
        .expect("the README section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block");
    let dir = scratch("readme");
    std::fs::write(dir.join("web.env"), "A=1\n").unwrap();
    let loaded = load_in(example, &dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.pools[0].0, "web");
}

#[test]
fn user_group_and_rlimits_reach_the_spec() {
    let loaded = load_str(
        "[[pool]]\ncommand = \"sh\"\nuser = \"nobody\"\ngroup = 65534\n\
         rlimits = { nofile = 4096, core = 0, stack = \"8MiB\", as = \"unlimited\", nproc = { soft = 10, hard = 20 } }\n",
    )
    .expect("loads");
    let debug = format!("{:?}", loaded.builder);
    for want in [
        "user: Some(Name(\"nobody\"))",
        "group: Some(Id(65534))",
        "(Nofile, 4096, 4096)",
        "(Core, 0, 0)",
        "(Nproc, 10, 20)",
        "(Stack, 8388608, 8388608)",
        &format!("(As, {0}, {0})", nanny::RLIMIT_UNLIMITED),
    ] {
        assert!(debug.contains(want), "{want} missing from {debug}");
    }
    assert!(loaded.builder.validate().is_ok(), "nobody is a known user");
}

#[test]
fn bad_rlimits_and_unknown_users_are_placed() {
    let e = err("[[pool]]\ncommand = \"sh\"\nrlimits = { nofle = 10 }\n");
    assert_eq!(e.at, Some((3, 13)), "the unknown resource itself: {e}");
    assert!(e.message.contains("unknown field `nofle`"), "{e}");
    assert!(e.message.contains("`nofile`"), "the resources are listed: {e}");
    let e = err("[[pool]]\ncommand = \"sh\"\nrlimits = { core = \"lots\" }\n");
    assert_eq!(e.at.map(|a| a.0), Some(3), "{e}");
    assert!(e.message.contains("\"unlimited\""), "{e}");
    let e = err("[[pool]]\ncommand = \"sh\"\nuser = true\n");
    assert_eq!(e.at, Some((3, 8)), "{e}");

    let e =
        semantic("[[pool]]\nname = \"p\"\ncommand = \"sh\"\nrlimits = { core = { soft = 2, hard = 1 } }\n");
    assert_eq!(
        e.message,
        "pool \"p\": rlimit core: soft limit 2 is over the hard limit 1"
    );
    assert_eq!(e.at, Some((1, 1)), "{e}");
    let e = semantic("[[pool]]\nname = \"p\"\ncommand = \"sh\"\nuser = \"no-such-user-here\"\n");
    assert_eq!(e.message, "pool \"p\": unknown user no-such-user-here");
    assert_eq!(e.at, Some((1, 1)), "{e}");
}
