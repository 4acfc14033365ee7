//! An axum app as a nanny worker: the supervisor owns the listening socket
//! and balances its connections over the workers; each worker runs a plain
//! axum server whose only change is its listener line:
//!
//! ```ignore
//! axum::serve(worker.incoming()?, app).with_graceful_shutdown(worker.draining())
//! ```
//!
//! It answers `GET /` with `hello from w<worker id>`, and `GET /slow` the
//! same after `SLOW_MS` milliseconds (default 200), to have a request in
//! progress during a drain; `/slow` emits the custom event `slow-started`
//! when it begins. On the supervisor's drain it stops taking
//! connections and finishes the open ones (axum's graceful shutdown); on
//! the soft kill that follows it exits 0. Started by hand (not by nanny)
//! it explains itself and exits 2.
//!
//! The integration tests start it from `target/<profile>/examples/axum_worker`
//! (cargo builds the examples with the tests).

use std::future::IntoFuture;
use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use axum::Router;

fn app(worker: nanny_worker::Worker, slow: Duration) -> Router {
    let worker_id = worker.id();
    Router::new()
        .route(
            "/",
            get(move || async move { format!("hello from w{worker_id}") }),
        )
        .route(
            "/slow",
            get(move || async move {
                // A custom event: the supervisor's `events()` sees it.
                let _ = worker.emit("slow-started", &worker_id);
                tokio::time::sleep(slow).await;
                format!("hello from w{worker_id}")
            }),
        )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if !nanny_worker::is_worker() {
        eprintln!("axum_worker: a nanny worker; start it from a nanny pool with a listener");
        return ExitCode::from(2);
    }
    let worker = match nanny_worker::connect().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("axum_worker: connect: {e}");
            return ExitCode::from(1);
        }
    };
    let slow = std::env::var("SLOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let incoming = match worker.incoming() {
        Ok(incoming) => incoming,
        Err(e) => {
            eprintln!("axum_worker: incoming: {e}");
            return ExitCode::from(1);
        }
    };
    let http = axum::serve(incoming, app(worker.clone(), Duration::from_millis(slow)))
        .with_graceful_shutdown(worker.draining())
        .into_future();
    let http = tokio::spawn(http);
    worker.ready();
    // Requests (a pool with a listener may get some too) are answered
    // alike; `serve` returns on the soft kill or when the link is gone.
    let id = worker.id();
    let served = worker
        .serve(move |req| async move {
            req.respond(&format!("hello from w{id}"))?;
            Ok(())
        })
        .await;
    match served {
        // Soft kill: `draining()` has resolved; let axum finish.
        Ok(()) => match http.await {
            Ok(Ok(())) => {
                worker.flush().await; // the last ConnectionClosed frames
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("axum_worker: http: {e}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("axum_worker: http task: {e}");
                ExitCode::from(1)
            }
        },
        // The supervisor is gone or kills us: do not wait for clients.
        Err(nanny_worker::Error::Disconnected | nanny_worker::Error::HardKilled) => {
            http.abort();
            ExitCode::SUCCESS
        }
        Err(e) => {
            http.abort();
            eprintln!("axum_worker: serve: {e}");
            ExitCode::from(1)
        }
    }
}
