//! [`Event`]: a broadcast from the supervisor, possibly with a descriptor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::protocol::decode_payload;
use crate::Error;

/// A broadcast event from the supervisor, given to
/// [`Worker::on_broadcast`](crate::Worker::on_broadcast) handlers.
///
/// A broadcast may carry a file descriptor, e.g. a listening socket the
/// supervisor shares with every worker ([`fd`](Self::fd)). Such a
/// broadcast travels on the fd channel, so it is not ordered with the
/// broadcasts without one. Several handlers may get the same event (it is
/// cloned for each): each takes its own copy of the descriptor with
/// [`try_clone_fd`](Self::try_clone_fd) or
/// [`tcp_listener`](Self::tcp_listener); the event's own copy is closed
/// when the last clone of the event is dropped.
///
/// ```no_run
/// # fn f(worker: &nanny_worker::Worker) {
/// worker.on_broadcast("server", |event| {
///     if let Some(Ok(listener)) = event.tcp_listener() {
///         println!("serving {:?} myself", listener.local_addr());
///     }
/// });
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    name: String,
    payload: Bytes,
    fd: Option<Arc<OwnedFd>>,
}

impl Event {
    pub(crate) fn new(name: String, payload: Vec<u8>) -> Self {
        Self {
            name,
            payload: Bytes::from(payload),
            fd: None,
        }
    }

    /// An event that came with a descriptor (fd channel kind
    /// [`FD_KIND_BROADCAST`](crate::protocol::FD_KIND_BROADCAST)).
    pub(crate) fn with_fd(name: String, payload: Vec<u8>, fd: OwnedFd) -> Self {
        Self {
            fd: Some(Arc::new(fd)),
            ..Self::new(name, payload)
        }
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the payload (MessagePack) into `T`. A `nil` payload decodes
    /// as `()` or `None`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(decode_payload(&self.payload)?)
    }

    /// The raw payload bytes.
    pub fn raw(&self) -> &[u8] {
        &self.payload
    }

    /// The descriptor that came with the event, if any (close-on-exec),
    /// borrowed from the event.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_deref().map(AsFd::as_fd)
    }

    /// A copy of the descriptor (`dup`, close-on-exec) that the caller
    /// owns; `None` if the event has none.
    pub fn try_clone_fd(&self) -> Option<io::Result<OwnedFd>> {
        self.fd().map(|fd| fd.try_clone_to_owned())
    }

    /// A copy of the descriptor as a std TCP listener; `None` if the event
    /// has none. Its blocking mode is the sender's (a passed descriptor
    /// shares its file status flags): call `set_nonblocking(true)` before
    /// handing it to tokio. It is not checked to be a
    /// TCP listener: what the descriptor is, is the event's own contract.
    pub fn tcp_listener(&self) -> Option<io::Result<std::net::TcpListener>> {
        self.try_clone_fd().map(|fd| fd.map(std::net::TcpListener::from))
    }
}
