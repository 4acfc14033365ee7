//! The supervisor's listeners: binding at spawn, one accept task per
//! round-robin listener, failures and restarts after
//! `server_restart_delay`, and their part of `inspect()` (see
//! [`crate::listen`] for the user's view). What happens to an accepted
//! connection is in [`connections`](super::connections).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nanny_worker::protocol::{self as p, AttachmentKind, ConnectionFrame, EVENT_LISTENER_FAILED};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::task::{Task, Timer};
use crate::builder::Config;
use crate::error::StartError;
use crate::events::Event;
use crate::listen::accept::{accept_loop, still_listening, ListenerEvent};
use crate::listen::{Distribution, ListenAddr, Listener, ListenerInfo, ListenerStatus};

/// One listener the supervisor owns.
#[derive(Debug)]
pub(super) struct ListenerState {
    pub(super) cfg: Listener,
    /// [`Listener::display_name`].
    pub(super) name: String,
    /// Index of the pool its connections (or its socket) go to.
    pub(super) pool: usize,
    /// The address it got (the port chosen for port 0).
    pub(super) local: ListenAddr,
    /// The listening socket (`None` while a failed one waits to be bound
    /// again, and after shutdown). Socket-activated workers inherit it.
    pub(super) socket: Option<Arc<OwnedFd>>,
    pub(super) status: ListenerStatus,
    /// Connections accepted and not yet taken: its backlog.
    pub(super) backlog: Arc<Semaphore>,
    /// Stops its accept task.
    pub(super) stop: CancellationToken,
    /// The `ConnectionFrame` every offer of its connections carries.
    pub(super) frame: Arc<[u8]>,
    pub(super) accepted: u64,
    pub(super) failures: u64,
    pub(super) restarts: u64,
    /// Whether it removes its Unix socket file at stop: it created it,
    /// and has not handed it over ([`Task::stop_accepting`]).
    pub(super) owns_path: bool,
}

/// Binds every listener, before any worker is spawned; the first that
/// fails is the error (the ones bound before it are closed, and their
/// Unix paths removed). A listener named in
/// [`Builder::inherit`](crate::Builder::inherit) serves on that socket;
/// the inherited sockets no listener is named after are closed. The given
/// sockets move into the listeners' state: the configuration keeps none.
pub(super) fn bind_listeners(cfg: &mut Config) -> Result<Vec<ListenerState>, StartError> {
    let mut inherited = std::mem::take(&mut cfg.inherited);
    for l in &mut cfg.listeners {
        let name = l.display_name();
        if let Some(at) = inherited.iter().position(|(n, _)| *n == name) {
            let (_, fd) = inherited.swap_remove(at);
            l.socket.get_or_insert(crate::listen::Inherited(fd));
        }
    }
    for (name, _) in inherited {
        tracing::info!(socket = %name, "an inherited socket no listener is named after: closed");
    }
    let mut out: Vec<ListenerState> = Vec::with_capacity(cfg.listeners.len());
    for l in &mut cfg.listeners {
        let given = l.socket.take();
        let mut with_socket = l.clone();
        with_socket.socket = given;
        let l = &*l;
        let bound = match crate::listen::bind(&with_socket) {
            Ok(b) => b,
            Err(e) => {
                for done in &out {
                    done.remove_path();
                }
                return Err(e.into());
            }
        };
        let pool = match &l.pool {
            Some(name) => cfg.pools.iter().position(|p| &p.name == name).unwrap_or(0),
            None => 0,
        };
        let name = l.display_name();
        let kind = match l.addr {
            ListenAddr::Tcp(_) => AttachmentKind::Tcp,
            ListenAddr::Unix(_) => AttachmentKind::Unix,
        };
        let frame = ConnectionFrame {
            listener: name.clone(),
            kind,
        };
        let frame = p::encode_payload(&frame).expect("a connection frame encodes");
        out.push(ListenerState {
            owns_path: with_socket.socket.is_none(),
            cfg: l.clone(),
            name,
            pool,
            local: bound.local,
            socket: Some(Arc::new(bound.fd)),
            status: ListenerStatus::Listening,
            backlog: Arc::new(Semaphore::new(l.backlog)),
            stop: CancellationToken::new(),
            frame: frame.into(),
            accepted: 0,
            failures: 0,
            restarts: 0,
        });
    }
    Ok(out)
}

impl ListenerState {
    /// Removes a Unix listener's socket file (it created it).
    pub(super) fn remove_path(&self) {
        if !self.owns_path {
            return;
        }
        if let ListenAddr::Unix(path) = &self.cfg.addr {
            let _ = std::fs::remove_file(path);
        }
    }

    fn round_robin(&self) -> bool {
        self.cfg.distribution == Distribution::RoundRobin
    }
}

impl Task {
    /// Starts the accept task of every round-robin listener.
    pub(super) fn start_listeners(&mut self) {
        for index in 0..self.listeners.len() {
            if self.listeners[index].round_robin() {
                self.start_accepting(index);
                let l = &self.listeners[index];
                self.emit(Event::ListenerStarted {
                    listener: l.name.clone(),
                    addr: l.local.clone(),
                });
            }
        }
    }

    fn start_accepting(&mut self, index: usize) {
        let l = &mut self.listeners[index];
        let Some(socket) = l.socket.clone() else {
            return;
        };
        l.stop = CancellationToken::new();
        l.status = ListenerStatus::Listening;
        self.tracker.spawn(accept_loop(
            index,
            socket,
            l.cfg.sticky_by_peer_ip,
            Arc::clone(&l.backlog),
            self.conns.listener_tx.clone(),
            l.stop.clone(),
        ));
    }

    /// Stops every listener for good (soft or hard kill): accepting stops,
    /// our listening sockets close (new clients are refused at once;
    /// socket-activated workers keep their own copies until they exit),
    /// and what waited for a worker is closed (offers stay: see
    /// [`Connections::close_waiting`](super::connections::Connections::close_waiting)).
    pub(super) fn stop_listeners(&mut self) {
        for l in &mut self.listeners {
            l.stop.cancel();
            l.backlog.close();
            l.socket = None;
            l.status = ListenerStatus::Stopped;
        }
        self.conns.close_waiting();
    }

    pub(super) fn on_listener_event(&mut self, event: ListenerEvent) {
        match event {
            ListenerEvent::Accepted {
                listener,
                fd,
                key,
                permit,
            } => self.on_connection(listener, fd, key, permit),
            ListenerEvent::Failed { listener, error } => self.on_listener_failed(listener, &error),
        }
    }

    fn on_listener_failed(&mut self, index: usize, error: &std::io::Error) {
        let delay = self.cfg.server_restart_delay;
        let l = &mut self.listeners[index];
        if l.status == ListenerStatus::Stopped {
            return;
        }
        l.status = ListenerStatus::Failed;
        l.failures += 1;
        tracing::error!(listener = %l.name, %error, ?delay, "listener failed; restarting after the delay");
        let (name, pool, message) = (l.name.clone(), l.pool, error.to_string());
        self.timers.insert(Timer::ListenerRestart(index), delay);
        self.emit(Event::ListenerFailed {
            listener: name.clone(),
            error: message.clone(),
        });
        let notice = ListenerFailedNotice {
            listener: name,
            error: message,
        };
        match p::encode_payload(&notice) {
            Ok(payload) => self.broadcast_to_pool(pool, EVENT_LISTENER_FAILED, &payload),
            Err(e) => tracing::warn!(error = %e, "cannot encode the listener-failed notice"),
        }
    }

    /// `server_restart_delay` passed since a failure: accept again on the
    /// same socket if it still listens, else bind a new one (a failure to
    /// bind waits another delay).
    pub(super) fn on_listener_restart(&mut self, index: usize) {
        if !self.accepting() {
            return;
        }
        let l = &mut self.listeners[index];
        if l.status == ListenerStatus::Stopped {
            return; // handed over meanwhile
        }
        if l.socket.as_deref().is_some_and(|s| !still_listening(s)) {
            l.socket = None; // closed before binding the address again
        }
        if l.socket.is_none() {
            let mut cfg = l.cfg.clone();
            cfg.addr = l.local.clone(); // the port chosen the first time
            match crate::listen::bind(&cfg) {
                Ok(bound) => l.socket = Some(Arc::new(bound.fd)),
                Err(e) => {
                    let error = std::io::Error::other(e.to_string());
                    return self.on_listener_failed(index, &error);
                }
            }
        }
        l.restarts += 1;
        let name = l.name.clone();
        self.start_accepting(index);
        self.emit(Event::ListenerRestarted { listener: name });
    }

    /// What `inspect()` shows of the listeners.
    pub(super) fn listener_infos(&self) -> Vec<ListenerInfo> {
        self.listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerInfo {
                name: l.name.clone(),
                addr: l.local.clone(),
                pool: self.pools[l.pool].cfg.name.clone(),
                distribution: l.cfg.distribution,
                status: l.status,
                backlog: l.cfg.backlog,
                waiting: self.conns.waiting_for(l.pool, i),
                accepted: l.accepted,
                failures: l.failures,
                restarts: l.restarts,
                sticky_by_peer_ip: l.cfg.sticky_by_peer_ip,
            })
            .collect()
    }
}

/// The payload of an [`EVENT_LISTENER_FAILED`] broadcast.
#[derive(Debug, serde::Serialize)]
struct ListenerFailedNotice {
    listener: String,
    error: String,
}

impl Task {
    /// Copies of the listening sockets, by name
    /// ([`Supervisor::listener_fds`](crate::Supervisor::listener_fds)).
    pub(super) fn listener_fds(&self) -> Vec<(String, OwnedFd)> {
        let mut out = Vec::with_capacity(self.listeners.len());
        for l in &self.listeners {
            let Some(socket) = &l.socket else { continue };
            match socket.try_clone() {
                Ok(fd) => out.push((l.name.clone(), fd)),
                Err(error) => tracing::warn!(listener = %l.name, %error, "cannot copy the listening socket"),
            }
        }
        out
    }

    /// The listeners' sockets are handed over
    /// ([`Supervisor::stop_accepting`](crate::Supervisor::stop_accepting)):
    /// accepting stops and our copies close, but what was accepted still
    /// goes out, and the Unix socket files stay.
    pub(super) fn stop_accepting(&mut self) {
        for l in &mut self.listeners {
            l.stop.cancel();
            l.socket = None;
            l.status = ListenerStatus::Stopped;
            l.owns_path = false;
        }
    }
}
