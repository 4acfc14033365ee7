//! [`Worker::incoming`]: the stream of balanced connections, and
//! [`Worker::draining`], the signal to stop serving them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::connection::{Connection, Conns, CONNECTION_QUEUE};
use crate::{Error, Worker};

/// The connections the supervisor hands this worker: a
/// [`Stream`] of [`Connection`]s, from [`Worker::incoming`].
///
/// While it lives the supervisor may offer this worker connections
/// accepted by its listeners; the SDK takes each one (tells the
/// supervisor, which then forgets it) and queues it here, up to
/// [`CONNECTION_QUEUE`]; an offer that finds the queue full, or comes
/// after the stream ended, is given back untouched (bounced) and goes to
/// another worker.
///
/// The stream ends (after handing out what it had queued) on a drain, a
/// soft or hard kill, or when the link closes; [`Worker::draining`]
/// resolves then too.
///
/// Dropping it tells the supervisor to offer no more; connections still
/// queued in it are closed (they were taken: their clients see the
/// connection close), so stop a server by letting the stream end rather
/// than by dropping it early.
///
/// With the `axum` feature it is an `axum::serve::Listener` (the address
/// type is [`Peer`](crate::Peer)):
///
/// ```ignore
/// let worker = nanny_worker::connect().await?;
/// worker.ready();
/// axum::serve(worker.incoming()?, app)
///     .with_graceful_shutdown(worker.draining())
///     .await?;
/// ```
///
/// With hyper alone, serve each connection as it comes:
///
/// ```ignore
/// use futures::StreamExt;
/// let mut incoming = worker.incoming()?;
/// while let Some(conn) = incoming.next().await {
///     let io = hyper_util::rt::TokioIo::new(conn); // Connection: AsyncRead + AsyncWrite
///     tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service.clone()));
/// }
/// ```
pub struct Incoming {
    rx: mpsc::Receiver<Connection>,
    conns: Arc<Conns>,
    /// It said `Listening { on: true }` (it was not ended from the start).
    announced: bool,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("queued", &self.rx.len())
            .field("ended", &self.rx.is_closed())
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The next connection; `None` once the stream has ended (see the
    /// type's docs).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is handed out whole or stays queued.
    pub async fn accept(&mut self) -> Option<Connection> {
        let next = self.rx.recv().await;
        if next.is_some() {
            self.conns.took_one();
        }
        next
    }
}

impl Stream for Incoming {
    type Item = Connection;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Connection>> {
        let this = self.get_mut();
        let next = ready!(this.rx.poll_recv(cx));
        if next.is_some() {
            this.conns.took_one();
        }
        Poll::Ready(next)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // The lock is released before `rx` (and the connections queued in
        // it, whose drops take it) goes.
        self.conns.unlisten(self.announced);
    }
}

impl Worker {
    /// Starts taking balanced connections: the supervisor's listeners
    /// accept them and hand them to workers that listen. See [`Incoming`].
    ///
    /// Tells the supervisor `Listening { on: true }`; dropping the
    /// `Incoming` tells it `Listening { on: false }`. Call
    /// [`ready`](Self::ready) too: connections, like requests, go only to
    /// a ready worker. After a drain (or a kill, or with the link closed)
    /// the `Incoming` returned is already ended, and nothing is told.
    ///
    /// # Errors
    ///
    /// * [`Error::AlreadyListening`] while another `Incoming` of this
    ///   worker lives (one at a time);
    /// * [`Error::NoFdChannel`] when the worker has no fd channel (then it
    ///   did not declare the `connections` capability and gets none).
    pub fn incoming(&self) -> Result<Incoming, Error> {
        if self.inner.fd_channel.is_none() {
            return Err(Error::NoFdChannel);
        }
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let conns = Arc::clone(&self.inner.conns);
        let announced = conns.listen(tx)?;
        Ok(Incoming { rx, conns, announced })
    }

    /// Resolves when this worker should stop taking work and finish what it
    /// has: on the supervisor's drain (`Drain`, sent before it stops a
    /// worker that takes connections), a soft or hard kill, or when the
    /// link closes. [`Incoming`] ends at the same moment.
    ///
    /// The natural argument to axum's `with_graceful_shutdown`:
    /// open connections finish, then the server returns.
    ///
    /// ```no_run
    /// # async fn f(worker: nanny_worker::Worker) {
    /// worker.draining().await;
    /// println!("no new connections or requests will come");
    /// # }
    /// ```
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.drain.clone().cancelled_owned()
    }

    /// Whether [`draining`](Self::draining) has resolved.
    pub fn is_draining(&self) -> bool {
        self.inner.drain.is_cancelled()
    }
}
