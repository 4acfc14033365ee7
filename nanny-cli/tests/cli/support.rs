//! What every test of the binary shares: a running `nanny` whose stderr is
//! collected, polling within a generous bound (no timing assertions), the
//! processes under a pid, and a fresh directory per test.

#![allow(dead_code)] // each test module uses its part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a condition may take on a loaded machine before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A running `nanny` whose stderr is collected.
pub(crate) struct Nanny {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Nanny {
    pub(crate) fn start(args: &[&str], file: &Path) -> Nanny {
        Self::start_with_env(args, file, &[])
    }

    /// [`start`](Self::start) with these environment variables set too.
    pub(crate) fn start_with_env(args: &[&str], file: &Path, env: &[(&str, &str)]) -> Nanny {
        let child = Command::new(env!("CARGO_BIN_EXE_nanny"))
            .args(args)
            .envs(env.iter().copied())
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nanny");
        Self::from_child(child)
    }

    /// A `nanny` the test spawned itself, with stderr piped.
    pub(crate) fn from_child(mut child: Child) -> Nanny {
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Nanny {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Its exit status, once it has exited (reaped then), else `None`.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until nanny logs that every worker is ready.
    pub(crate) fn wait_ready(&self) {
        within(
            || self.stderr().contains("every worker is ready").then_some(()),
            "nanny to say every worker is ready",
        );
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn signal(&self, name: &str) {
        Self::signal_pid(self.pid(), name);
    }

    /// Sends signal `name` to `pid` (e.g. a nanny an upgrade started).
    pub(crate) fn signal_pid(pid: u32, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits for the exit, then for the rest of stderr.
    pub(crate) fn wait(mut self) -> (ExitStatus, String) {
        let status = within(|| self.child.try_wait().unwrap(), "nanny to exit");
        self.reader.take().unwrap().join().unwrap();
        (status, self.stderr())
    }
}

impl Drop for Nanny {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it gives a value, within [`PATIENCE`].
pub(crate) fn within<T>(mut f: impl FnMut() -> Option<T>, what: &str) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The worker processes whose parent is `pid`, with their `comm`: every
/// child but the `nanny-init` of each worker's PID namespace (see
/// `nanny::descendants`).
pub(crate) fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split at the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_owned();
        let ppid = tail.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && comm != "nanny-init" {
            found.push((child, comm));
        }
    }
    found
}

pub(crate) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A fresh directory for one test, holding `nanny.toml` with `text`.
pub(crate) fn config(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nanny-run-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nanny.toml");
    // Tests run side by side: the API takes any free port unless the test
    // sets its own `[api]`.
    let api = if text.contains("[api]") {
        ""
    } else {
        "\n[api]\nlisten = \"127.0.0.1:0\"\n"
    };
    std::fs::write(&file, format!("{text}{api}")).unwrap();
    file
}

/// What `nanny run` wrote to `<dir>/.nanny/api.json`, once it is there.
pub(crate) fn discovery(file: &Path) -> serde_json::Value {
    let path = file.parent().unwrap().join(".nanny/api.json");
    within(
        || {
            std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
        },
        "api.json",
    )
}

/// The API of a running `nanny run` started from `file`: its URL and token.
pub(crate) struct Api {
    pub(crate) url: String,
    pub(crate) token: String,
    agent: ureq::Agent,
}

impl Api {
    /// Found as the CLI finds it: through `api.json` and its token file.
    pub(crate) fn of(file: &Path) -> Api {
        let d = discovery(file);
        let token_file = d["token_file"].as_str().expect("a token file");
        let token = std::fs::read_to_string(token_file).unwrap().trim().to_owned();
        Api {
            url: d["url"].as_str().unwrap().to_owned(),
            token,
            agent: agent(),
        }
    }

    /// The API of `file`'s nanny, with a token given rather than read.
    pub(crate) fn with_token(file: &Path, token: &str) -> Api {
        let d = discovery(file);
        Api {
            url: d["url"].as_str().unwrap().to_owned(),
            token: token.to_owned(),
            agent: agent(),
        }
    }

    /// `METHOD path` with `token` (none: no Authorization header) and an
    /// optional JSON body; the status and the body parsed as JSON (Null if
    /// it is not JSON).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            "POST" | "PUT" | "DELETE" => {
                let mut r = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.delete(&url).force_send_body(),
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
            other => panic!("unsupported method {other}"),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `GET path` with `token` (none: no Authorization header): the status,
    /// the content type and the body as text.
    pub(crate) fn text(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let mut r = self.agent.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let mut response = r.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let content_type = (response.headers().get("content-type"))
            .map_or(String::new(), |v| v.to_str().unwrap_or_default().to_owned());
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), content_type, body)
    }

    /// `GET path` with the right token.
    pub(crate) fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("GET", path, Some(&self.token.clone()), None)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
}

/// The root package's test worker, built by `cargo test --workspace` into
/// the same target directory as this test.
pub(crate) fn test_worker() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/cli-HASH → target/debug/nanny-test-worker
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("nanny-test-worker");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p nanny --bin nanny-test-worker` (cargo test --workspace does)",
        path.display()
    );
    path
}
