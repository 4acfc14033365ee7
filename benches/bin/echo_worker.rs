//! The smallest worker a user would write on the SDK, as the crate's docs
//! show it: [`nanny_worker::connect`], `ready`, and `serve` with an
//! ordinary handler that answers each request with its own payload; on a
//! current-thread runtime, as every bench's workers are (nanny's
//! parallelism is its worker processes, one per core).
//!
//! `benches/scale.rs` runs its pools of this program and reports its
//! resident set: what an idle worker costs a user, apart from whatever
//! their own binary adds (the benches' self-forked workers carry nanny's
//! whole supervisor in their text). With `#[tokio::main]`'s default
//! multi-thread runtime (two threads on two cores) it is about 340 KiB
//! more (BENCHMARKS.md, "Memory per idle worker").

async fn echo(req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
    let payload: serde_bytes::ByteBuf = req.data()?;
    req.respond(&payload)?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), nanny_worker::Error> {
    let worker = nanny_worker::connect().await?;
    worker.ready();
    match worker.serve(echo).await {
        Ok(()) | Err(nanny_worker::Error::Disconnected) => Ok(()),
        Err(e) => Err(e),
    }
}
