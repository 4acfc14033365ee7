//! The SDK-based serving worker (`normal`, `slow`, `never-ready`,
//! `ignore-soft-kill`, `deaf`, and with [`conn`] `conn-echo`,
//! `conn-close-after`): its state, its broadcast and signal hooks,
//! and how it says ready. Its requests go to [`handle`].

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanny_worker::protocol as p;
use nanny_worker::{Request, Worker};
use tokio::sync::watch;

use crate::cmd::{
    self, Whoami, COUNT, COUNTED, GOT_SIGUSR1, HEARD_LISTENER_FAILED, PING, PONG, RELEASE, SERVE_LISTENER,
    SET_READY,
};
use crate::handle::handle;
use crate::{env_u64, mode};

/// What a request handler can reach.
pub(crate) struct State {
    pub(crate) worker: Worker,
    /// Keys of the `release` broadcasts seen so far.
    pub(crate) gates: watch::Sender<HashSet<String>>,
    /// Memory kept by [`Cmd::Inflate`](cmd::Cmd::Inflate).
    pub(crate) hoard: Mutex<Vec<Vec<u8>>>,
    pub(crate) delay: Duration,
    pub(crate) slow: Option<Duration>,
    /// Request handlers running now (see [`COUNT`]).
    pub(crate) handlers: std::sync::atomic::AtomicUsize,
    /// The messages it received (see [`crate::messages`]).
    pub(crate) inbox: Arc<crate::messages::Inbox>,
}

/// Counts a running handler in [`State::handlers`] until it is dropped
/// (when the handler returns or its future is dropped).
pub(crate) struct HandlerGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> HandlerGuard<'a> {
    pub(crate) fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for HandlerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl State {
    pub(crate) fn whoami(&self, req: &Request) -> Whoami {
        Whoami {
            worker_id: self.worker.id(),
            pid: nanny_worker::pid(),
            own_pid: std::process::id(),
            logical_id: self.worker.logical_id(),
            pool: self.worker.pool().to_owned(),
            attempt: req.attempt(),
            unhealthy_timeout_ms: (
                self.worker.unhealthy_timeout().map(|t| t.as_millis() as u64),
                crate::env_u64(nanny_worker::protocol::ENV_UNHEALTHY_TIMEOUT_MS),
            ),
        }
    }

    /// Waits for `release(key)`; false if the attempt was cancelled first.
    pub(crate) async fn gate(&self, req: &Request, key: &str) -> bool {
        let mut released = self.gates.subscribe();
        tokio::select! {
            r = released.wait_for(|keys| keys.contains(key)) => r.is_ok(),
            () = req.cancelled() => false,
        }
    }
}

pub(crate) async fn serve() -> ExitCode {
    let mode = mode();
    if mode == "deaf" {
        deafen();
    }
    let worker = match nanny_worker::connect().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("nanny-test-worker: connect failed: {e}");
            return ExitCode::from(1);
        }
    };
    let slow = match (env_u64("TEST_SLOW_LOGICAL_ID"), env_u64("TEST_SLOW_MS")) {
        (Some(id), Some(ms)) if id == worker.logical_id() => Some(Duration::from_millis(ms)),
        _ => None,
    };
    let delay = match mode.as_str() {
        "slow" => Duration::from_millis(env_u64("TEST_DELAY_MS").unwrap_or(100)),
        _ => Duration::ZERO,
    };
    let state = Arc::new(State {
        worker: worker.clone(),
        gates: watch::Sender::new(HashSet::new()),
        hoard: Mutex::new(Vec::new()),
        delay,
        slow,
        handlers: std::sync::atomic::AtomicUsize::new(0),
        inbox: Arc::default(),
    });
    crate::messages::listen(&worker, &state.inbox);

    let st = Arc::clone(&state);
    worker.on_broadcast(RELEASE, move |ev| {
        if let Ok(key) = ev.data::<String>() {
            st.gates.send_modify(|keys| {
                keys.insert(key);
            });
        }
    });
    let w = worker.clone();
    worker.on_broadcast(SET_READY, move |_| w.ready());
    // A broadcast carrying a listening socket: accept on it, answering
    // each connection with `w<id>\n`.
    let id = worker.id();
    worker.on_broadcast(SERVE_LISTENER, move |ev| {
        let Some(Ok(listener)) = ev.tcp_listener() else {
            return;
        };
        let _ = listener.set_nonblocking(true);
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(format!("w{id}\n").as_bytes()).await;
            }
        });
    });
    // What the supervisor tells a pool when one of its listeners fails.
    let w = worker.clone();
    worker.on_broadcast(p::EVENT_LISTENER_FAILED, move |_| {
        let _ = w.emit(HEARD_LISTENER_FAILED, &());
    });
    let w = worker.clone();
    worker.on_broadcast(PING, move |ev| {
        if let Ok(text) = ev.data::<String>() {
            let _ = w.emit(PONG, &(text, w.logical_id()));
        }
    });
    let st = Arc::clone(&state);
    worker.on_broadcast(COUNT, move |ev| {
        if let Ok(nonce) = ev.data::<String>() {
            let running = cmd::Running {
                nonce,
                worker_id: st.worker.id(),
                handlers: st.handlers.load(std::sync::atomic::Ordering::SeqCst),
            };
            let _ = st.worker.emit(COUNTED, &running);
        }
    });
    // Kill tests: the soft-kill hook leaves a mark, a file named after
    // this process's pid in that directory.
    if let Some(dir) = std::env::var_os("TEST_SOFT_KILL_MARK") {
        let mark = std::path::PathBuf::from(dir).join(nanny_worker::pid().to_string());
        worker.on_soft_kill(move || async move {
            if let Err(e) = std::fs::write(&mark, b"soft-killed") {
                eprintln!("nanny-test-worker: cannot write {}: {e}", mark.display());
            }
        });
    }
    if mode == "ignore-soft-kill" {
        worker.on_soft_kill(futures::future::pending::<()>);
    }
    // `Supervisor::signal` tests: SIGUSR1 is reported, not fatal.
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("a SIGUSR1 handler");
    let w = worker.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let _ = w.emit(GOT_SIGUSR1, &nanny_worker::pid());
        }
    });

    match std::env::var("TEST_READY_ON") {
        _ if mode == "never-ready" || mode == "deaf" => {}
        Ok(event) => {
            let w = worker.clone();
            worker.on_broadcast(&event, move |_| w.ready());
        }
        Err(_) => worker.ready(),
    }

    let conns = crate::conn::start(&worker, &mode);
    let result = worker
        .serve(move |req| {
            let st = Arc::clone(&state);
            async move { handle(&st, req).await }
        })
        .await;
    if let Some(task) = conns {
        task.abort(); // connections still open after the soft kill
        let _ = task.await;
    }
    match result {
        Ok(()) | Err(nanny_worker::Error::Disconnected | nanny_worker::Error::HardKilled) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nanny-test-worker: serve failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Points the SDK at a private fd channel nobody writes to, and leaves the
/// supervisor's, inherited, open and unread: the supervisor's sends succeed,
/// but no attachment ever reaches the SDK.
fn deafen() {
    use std::os::fd::IntoRawFd;
    let (ours, theirs) = nanny_worker::fdpass::FdChannel::pair().expect("a socketpair");
    // The SDK takes ownership of the number it finds in the environment.
    let fd = ours.into_raw_fd();
    std::env::set_var(p::ENV_FD_CHANNEL, fd.to_string());
    // The other end stays open (never written) for the life of the process.
    std::mem::forget(theirs);
}
