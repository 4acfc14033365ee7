//! Feature `axum`: [`Incoming`] as an `axum::serve::Listener`, so an axum
//! app runs in a worker with only its listener changed:
//!
//! ```ignore
//! axum::serve(worker.incoming()?, app)
//!     .with_graceful_shutdown(worker.draining())
//!     .await?;
//! ```
//!
//! The address type is [`Peer`]; `ConnectInfo<Peer>` works with
//! `app.into_make_service_with_connect_info::<Peer>()`.

use std::io;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};

use crate::{Connection, Incoming, Peer};

impl Listener for Incoming {
    type Io = Connection;
    type Addr = Peer;

    /// The next connection. Once the stream has ended (drain, kill, link
    /// closed) it pends forever, as axum expects of a listener: the server
    /// then stops by its graceful-shutdown signal
    /// ([`Worker::draining`](crate::Worker::draining)).
    async fn accept(&mut self) -> (Connection, Peer) {
        match Incoming::accept(self).await {
            Some(conn) => {
                let peer = conn.peer().clone();
                (conn, peer)
            }
            None => std::future::pending().await,
        }
    }

    /// Always an [`Unsupported`](io::ErrorKind::Unsupported) error: the
    /// sockets are the supervisor's; a connection's
    /// [`listener`](Connection::listener) names the one that accepted it.
    fn local_addr(&self) -> io::Result<Peer> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a nanny worker's connections come from the supervisor's listeners",
        ))
    }
}

impl Connected<IncomingStream<'_, Incoming>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Self {
        stream.remote_addr().clone()
    }
}
