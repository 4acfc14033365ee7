//! Connection traffic through the balancer during the chaos: a few
//! clients that connect, send a line and read its echo, again and again.
//! A connection whose worker is killed under it breaks (that is the
//! chaos); one the supervisor's listener refuses would be a defect.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::conns::try_served_by;

/// Clients connecting at once, each one connection at a time.
pub(crate) const CLIENTS: usize = 4;

/// What became of the connections.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    pub(crate) echoed: AtomicU64,
    /// Reset or closed before the echo: its worker died or was stopped.
    pub(crate) broken: AtomicU64,
    /// `connect` failed: the listener refused.
    pub(crate) refused: AtomicU64,
    pub(crate) first_refusal: Mutex<Option<String>>,
}

impl Conns {
    pub(crate) fn line(&self) -> String {
        format!(
            "connections: {} echoed, {} broken by the chaos, {} refused",
            self.echoed.load(Ordering::SeqCst),
            self.broken.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
        )
    }
}

/// One client's loop, until `stop`.
pub(crate) async fn client(addr: SocketAddr, n: usize, conns: Arc<Conns>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        match try_served_by(addr, &format!("c{n}-{i}")).await {
            Ok(_) => conns.echoed.fetch_add(1, Ordering::SeqCst),
            Err(e) if e.starts_with("connect") => {
                conns.first_refusal.lock().unwrap().get_or_insert(e);
                conns.refused.fetch_add(1, Ordering::SeqCst)
            }
            Err(_) => conns.broken.fetch_add(1, Ordering::SeqCst),
        };
        i += 1;
    }
}
