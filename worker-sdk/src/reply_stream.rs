//! The task behind [`Request::respond_stream`](crate::Request::respond_stream):
//! passes a response stream's far end on the fd channel, then sends the
//! response, then pumps the handler's reader into the stream.

use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio::net::UnixStream;

use crate::attempt::{ok_outcome, Answered, Attempt};
use crate::protocol::{FdTag, Outcome, RemoteError, FD_KIND_RESPONSE_STREAM};
use crate::stream::pump_socket;
use crate::{kind, Error, Worker};

/// Answers `attempt` with an [`kind::ATTACHMENT`] error.
fn fail_stream(attempt: &Attempt, message: String) {
    let err = RemoteError::new(kind::ATTACHMENT, message);
    let _ = attempt.answer(Outcome::Err(err), false, false);
}

/// Answers `attempt` with `payload` and a response stream fed from
/// `reader`, on a task of its own. The attempt stays in the in-flight
/// table (so a soft-kill drain waits for it) until the stream is written:
/// its ticket moves into the task with the answer.
pub(crate) fn spawn_response_stream<R>(
    worker: &Worker,
    attempt: Arc<Attempt>,
    payload: Vec<u8>,
    reader: R,
) -> Result<(), Error>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let Some(channel) = worker.inner.fd_channel.clone() else {
        fail_stream(&attempt, "this worker has no fd channel".into());
        return Err(Error::NoFdChannel);
    };
    if worker.is_closed() {
        fail_stream(&attempt, "the link is gone".into());
        return Err(Error::Disconnected);
    }
    let pair = std::os::unix::net::UnixStream::pair().and_then(|(ours, theirs)| {
        ours.set_nonblocking(true)?;
        Ok((UnixStream::from_std(ours)?, theirs))
    });
    let (ours, theirs) = match pair {
        Ok(pair) => pair,
        Err(e) => {
            fail_stream(&attempt, format!("could not create the response stream: {e}"));
            return Err(e.into());
        }
    };
    let closed = worker.inner.closed.clone();
    tokio::spawn(async move {
        let key = attempt.key;
        let tag = FdTag::new(key, FD_KIND_RESPONSE_STREAM);
        // The descriptor goes first, then the frame that announces it.
        let sent = closed
            .run_until_cancelled(channel.send(tag, theirs.as_fd()))
            .await;
        drop(theirs); // the supervisor has its own copy now
        match sent {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(id = %key.id, attempt = key.attempt, error = %e, "could not pass a response stream");
                return fail_stream(&attempt, format!("could not pass the response stream: {e}"));
            }
            None => {
                let message = "the link closed before the response stream was passed";
                return fail_stream(&attempt, message.into());
            }
        }
        let (answered, ticket) = attempt.answer(ok_outcome(payload), false, true);
        if answered == Answered::Already {
            return; // another answer came first: nobody reads this stream
        }
        drop(attempt);
        let pumped = closed.run_until_cancelled(pump_socket(reader, ours)).await;
        match pumped {
            Some(Ok(bytes)) => tracing::trace!(id = %key.id, bytes, "response stream done"),
            Some(Err(e)) => tracing::debug!(id = %key.id, error = %e, "response stream cut short"),
            None => tracing::debug!(id = %key.id, "response stream cut short: the link closed"),
        }
        drop(ticket); // the attempt is over
    });
    Ok(())
}
