//! `rediss://`: two hosts over TLS (rustls) to a real `redis-server`
//! listening with a certificate of a private CA made here by `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nanny::RedisQueue;

use super::support::{self, guard, within, Cmd};

/// A TLS-only `redis-server` on 127.0.0.1, killed by pid on drop.
struct TlsRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (Debian's openssl package)");
    assert!(status.success(), "openssl {args:?} failed");
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = std::env::temp_dir().join(format!("nanny-redis-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=nanny test CA",
        ]);
        openssl(&dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&dir, &csr);
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        // A free port: bound, read, released (the server takes it next).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(super::redis_server::REDIS_SERVER)
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key"])
            .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(&dir)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = TlsRedis { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn queue(&self, host: &str) -> RedisQueue {
        let ca = std::fs::read(self.dir.join("ca.crt")).expect("the CA");
        RedisQueue::new(format!("rediss://localhost:{}/", self.port), "tls")
            .host(host)
            .tls_root_certificate(ca)
            .heartbeat(Duration::from_millis(100))
            .min_idle(Duration::from_millis(500))
            .block(Duration::from_millis(200))
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_over_tls() {
    guard(async {
        let redis = TlsRedis::start();
        let b = support::builder(1)
            .queue(redis.queue("b"))
            .start()
            .await
            .expect("b starts");
        let a = support::builder(0)
            .queue(redis.queue("a"))
            .start()
            .await
            .expect("a starts");
        let resp = within("an answer over TLS", a.enqueue(&Cmd::Double(21)))
            .await
            .expect("answered");
        assert_eq!(resp.data::<u64>().expect("a number"), 42);
        assert_eq!(resp.host(), Some("b"));
        within("a's stop", a.soft_kill()).await;
        within("b's stop", b.soft_kill()).await;
    })
    .await;
}
