//! What the self-forking benches share: the worker side.
//!
//! Each bench binary is also its own worker: `main` first checks
//! `nanny_worker::is_worker()` and, if so, calls [`serve`] with its handler
//! instead of running criterion.

use std::future::Future;

/// Runs this process as a worker on a current-thread runtime, answering
/// every request with `handler`, until the supervisor stops it; exits the
/// process with status 1 on any other end.
pub(crate) fn serve<H, Fut>(name: &str, handler: H)
where
    H: Fn(nanny_worker::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), nanny_worker::HandlerError>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime");
    let result = rt.block_on(async {
        let worker = nanny_worker::connect().await?;
        worker.ready();
        worker.serve(handler).await
    });
    match result {
        Ok(()) | Err(nanny_worker::Error::Disconnected) => {}
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

/// [`serve`] with the echo handler the throughput benches share: every
/// request answered with its own payload (a `serde_bytes::ByteBuf`).
#[allow(dead_code)] // not every bench binary that includes this module echoes
pub(crate) fn serve_echo() {
    serve("echo worker", |req| async move {
        let payload: serde_bytes::ByteBuf = req.data()?;
        req.respond(&payload)?;
        Ok(())
    });
}
