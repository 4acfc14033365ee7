//! The [`Cmd`]s that ask the supervisor something (asks, kills, spawns,
//! close, restart) and the one that reports the worker's arguments.

use nanny_worker::{AskError, HandlerError, Request, SpawnRequest, Worker};

use crate::cmd::Cmd;

/// The answer form of these commands: the value, or the error's `Debug`.
fn shown<T>(result: Result<T, AskError>) -> Result<T, String> {
    result.map_err(|e| format!("{e:?}"))
}

/// Answers one question command (any other is a handler error).
pub(crate) async fn handle(worker: &Worker, req: Request, cmd: Cmd) -> Result<(), HandlerError> {
    match cmd {
        Cmd::Ask { event, payload } => {
            let answer: Result<String, AskError> = worker.ask(&event, &payload).await;
            req.respond(&shown(answer))?;
        }
        Cmd::Kill { target, code } => req.respond(&shown(worker.kill(target, code).await))?,
        Cmd::Spawn {
            pool,
            count,
            respawn,
            args,
            cpus,
        } => {
            let mut request = args.into_iter().fold(SpawnRequest::new(pool), SpawnRequest::arg);
            if let Some(cpus) = cpus {
                request = request.cpus(cpus);
            }
            let spawned = worker.spawn_workers(request.count(count).respawn(respawn)).await;
            let listed = spawned.map(|list| list.into_iter().map(|w| (w.id, w.name)).collect::<Vec<_>>());
            req.respond(&shown(listed))?;
        }
        Cmd::Close(code) => worker.close(code).await,
        Cmd::RestartMe => req.respond(&shown(worker.restart_me().await))?,
        Cmd::Argv => req.respond(&std::env::args().skip(1).collect::<Vec<_>>())?,
        other => return Err(format!("not a question: {other:?}").into()),
    }
    Ok(())
}
