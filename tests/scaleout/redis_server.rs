//! A real `redis-server` for the scale-out tests: started on a Unix socket
//! in a temporary folder of its own (no TCP port), killed by pid.
//!
//! * [`RedisServer::start`]: no persistence (`--save "" --appendonly no`).
//! * [`RedisServer::start_with_aof`]: `appendonly yes`, `appendfsync everysec`,
//!   for the tests that restart Redis mid-load.
//! * [`RedisServer::restart`] SIGKILLs the server by its pid and starts it
//!   again on the same socket and folder (with AOF, what was fsynced comes back).
//! * Drop SIGKILLs it by pid, waits for it and removes the folder.
//!
//! A missing `redis-server` panics with a message that says how to install
//! it: the tests that need Redis fail, they never skip.
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The server binary: Debian's `redis-server` package.
pub(crate) const REDIS_SERVER: &str = "redis-server";

/// How long a starting server may take to accept on its socket.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// A running `redis-server` of one test.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    aof: bool,
}

impl RedisServer {
    /// A server without persistence.
    pub(crate) fn start() -> RedisServer {
        Self::launch(false)
    }

    /// A server with `appendonly yes` and `appendfsync everysec`.
    pub(crate) fn start_with_aof() -> RedisServer {
        Self::launch(true)
    }

    fn launch(aof: bool) -> RedisServer {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nanny-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder for redis-server");
        let socket = dir.join("redis.sock");
        let mut server = RedisServer {
            child: None,
            dir,
            socket,
            aof,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&self.socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(["--save", "", "--daemonize", "no"]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start {REDIS_SERVER} ({e}): the scale-out tests need a real Redis; \
                 install Debian's package (apt-get install redis-server) or run scripts/test as root"
            ),
        };
        self.child = Some(child);
        self.wait_accepting();
    }

    /// Polls the socket with PING until the server answers.
    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("{REDIS_SERVER} exited at start ({status}):\n{log}");
            }
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{REDIS_SERVER} did not accept on {} within {START_PATIENCE:?}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// `redis+unix:///…/redis.sock`.
    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// The socket's path.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's folder (its log, its AOF).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    /// A client for checks from the test (XPENDING, XLEN, KEYS…).
    pub(crate) fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("the server's url parses")
    }

    /// A blocking connection for checks from the test.
    pub(crate) fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("a connection to the test's redis-server")
    }

    /// SIGKILLs the server by pid and waits for it, without starting it again.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL to this pid
            let _ = child.wait();
        }
    }

    /// SIGKILLs the server by pid and starts it again on the same socket
    /// and folder.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
