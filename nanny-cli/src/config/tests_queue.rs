//! `[queue]`: the shared request queue's table, its two ways to give the
//! URL, and its errors placed at the table.

use std::path::Path;

use super::build::queue;
use super::schema::QueueConfig;
use super::tests::{err, load_str, semantic};

const POOL: &str = "[[pool]]\ncommand = \"sleep\"\n";

fn config(text: &str) -> QueueConfig {
    toml::from_str(text).expect("the table parses")
}

#[test]
fn a_queue_with_every_key_reaches_the_builder_without_its_password() {
    let file = format!(
        "{POOL}\n[queue]\nurl = \"redis://app:s3cret@10.0.0.5:6379/2\"\nnamespace = \"shop\"\nhost = \"web-1\"\n\
         heartbeat = \"2s\"\nmin_idle = \"10s\"\njanitor = \"1s\"\nblock = \"500ms\"\nreply_ttl = \"5m\"\n\
         min_available_memory = \"256MiB\"\n"
    );
    let loaded = load_str(&file).expect("loads");
    let debug = format!("{:?}", loaded.builder);
    for want in [
        "namespace: \"shop\"",
        "Some(\"web-1\")",
        "heartbeat: 2s",
        "min_idle: 10s",
        "janitor: 1s",
        "block: 500ms",
        "reply_ttl: 300s",
        "min_available_memory: Some(268435456)",
    ] {
        assert!(debug.contains(want), "{want} missing from {debug}");
    }
    assert!(
        !debug.contains("s3cret") && !debug.contains("10.0.0.5"),
        "{debug}"
    );
}

#[test]
fn url_env_names_the_variable_that_holds_the_url() {
    let q = config("url_env = \"SHOP_REDIS\"\nnamespace = \"shop\"\n");
    let env = |name: &str| (name == "SHOP_REDIS").then(|| "redis://127.0.0.1/".to_owned());
    let built = queue(&q, Path::new("/srv"), env).expect("the variable is set");
    assert!(format!("{built:?}").contains("scheme: \"redis\""), "{built:?}");
    let missing = queue(&q, Path::new("/srv"), |_| None).expect_err("the variable is not set");
    assert_eq!(missing, "url_env names SHOP_REDIS, which is not set");
}

#[test]
fn the_url_is_given_exactly_once_and_the_error_points_at_the_table() {
    let both = err(&format!(
        "{POOL}\n[queue]\nurl = \"redis://x/\"\nurl_env = \"X\"\nnamespace = \"n\"\n"
    ));
    assert_eq!(both.message, "[queue]: url and url_env are both set; give one");
    assert_eq!(both.at, Some((4, 1)), "{both}");
    let neither = err(&format!("{POOL}\n[queue]\nnamespace = \"n\"\n"));
    assert_eq!(neither.message, "[queue]: url or url_env is required");
    let unknown = err(&format!(
        "{POOL}\n[queue]\nurl = \"redis://x/\"\nnamespace = \"n\"\nmaxlen = 5\n"
    ));
    assert!(unknown.message.contains("unknown field `maxlen`"), "{unknown}");
}

#[test]
fn the_librarys_own_checks_point_at_the_table() {
    let short = semantic(&format!(
        "{POOL}\n[queue]\nurl = \"redis://127.0.0.1/\"\nnamespace = \"n\"\nheartbeat = \"1s\"\nmin_idle = \"2s\"\n"
    ));
    assert!(
        short
            .message
            .contains("min_idle must be at least three heartbeats"),
        "{short}"
    );
    assert_eq!(short.at, Some((4, 1)), "{short}");
    let scheme = semantic(&format!(
        "{POOL}\n[queue]\nurl = \"http://x/\"\nnamespace = \"n\"\n"
    ));
    assert!(scheme.message.contains("redis://"), "{scheme}");
}

#[test]
fn tls_ca_file_is_read_from_the_files_directory() {
    let dir = std::env::temp_dir().join(format!("nanny-cli-queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder");
    let q = config("url = \"rediss://redis.internal:6380/\"\nnamespace = \"n\"\ntls_ca_file = \"ca.pem\"\n");
    let missing = queue(&q, &dir, |_| None).expect_err("no ca.pem yet");
    assert!(
        missing.starts_with(&format!("tls_ca_file {}", dir.join("ca.pem").display())),
        "{missing}"
    );
    std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").expect("write");
    let built = queue(&q, &dir, |_| None).expect("read");
    assert!(format!("{built:?}").contains("rediss"), "{built:?}");
    std::fs::remove_dir_all(&dir).ok();
}
