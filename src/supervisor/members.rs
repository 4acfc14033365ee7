//! The cluster operations a worker may ask for (see [`crate::asks`]): a
//! kill of another member (or, at the supervisor's pid, of the cluster)
//! and new workers in a pool. Each is refused, with a typed answer and
//! nothing done, unless the pool's settings allow it; a kill names only
//! members, so no pid outside the cluster is ever signalled.

use nanny_worker::protocol::{ask_kind, SpawnedWorker, Target, ToWorker};

use super::asks::{encoded, refusal, Answer};
use super::command::Manage;
use super::ops::OpReply;
use super::task::Task;
use crate::error::Error;
use crate::health::{WorkerId, WorkerState};
use crate::pool::RestartPolicy;
use crate::WorkerRef;

impl Task {
    /// `kill(target, code)` from `asker`.
    pub(super) fn kill_member(&mut self, asker: WorkerId, target: &Target, code: i32) -> Answer {
        let pool = &self.pools[self.workers[&asker].pool];
        if !pool.cfg.asks.allow_kill {
            let why = format!("pool {:?} does not allow kills (Pool::allow_kill)", pool.cfg.name);
            return Err(refusal(ask_kind::REFUSED, why));
        }
        if *target == Target::Pid(std::process::id()) {
            return self.shutdown_for(asker);
        }
        let found = match target {
            Target::Pid(pid) => (self.workers.iter())
                .find(|(_, w)| w.pid == *pid)
                .map(|(&id, _)| id),
            Target::Id(n) => Some(WorkerId(*n)).filter(|id| self.workers.contains_key(id)),
            Target::Name(name) => self.live_worker(&WorkerRef::Name(name.clone())).ok(),
        };
        let Some(id) = found else {
            return Err(refusal(ask_kind::NOT_A_MEMBER, format!("{target:?}")));
        };
        let w = &self.workers[&id];
        if !w.caps.exit {
            let why = format!("{} does not understand Exit (no \"exit\" capability)", w.name);
            return Err(refusal(ask_kind::UNSUPPORTED, why));
        }
        if matches!(w.state, WorkerState::Stopping | WorkerState::Draining) {
            return Err(refusal(
                ask_kind::FAILED,
                format!("{} is stopping already", w.name),
            ));
        }
        tracing::info!(worker = %id, name = %w.name, code, by = %asker, "a worker's kill: Exit");
        if let Some(a) = self.workers.get_mut(&asker) {
            a.counters.kills += 1;
        }
        self.send_frame(id, ToWorker::Exit { code });
        self.ending(id, code);
        encoded(&())
    }

    /// A kill aimed at the supervisor's pid: a soft kill of the cluster,
    /// if allowed. The answer is queued before the drain's frames.
    fn shutdown_for(&mut self, asker: WorkerId) -> Answer {
        if !self.cfg.asks.allow_shutdown {
            let why =
                "the supervisor does not allow workers to stop the cluster (Builder::allow_worker_shutdown)";
            return Err(refusal(ask_kind::REFUSED, why));
        }
        tracing::warn!(by = %asker, "a worker's kill of the supervisor: soft kill of the cluster");
        // Nobody waits for the drain's end. The answer is queued by the
        // caller, before the drain's frames (sent after this event).
        let (reply, _) = tokio::sync::oneshot::channel();
        self.begin_drain(reply);
        encoded(&())
    }

    /// `spawn_workers(pool, count, respawn, args, cpus)` from `asker`: `count` workers
    /// added through `add_worker`'s path, answered once all are ready (or
    /// with the first failure; the others stay).
    pub(super) fn spawn_for(&mut self, asker: WorkerId, id: u64, spawn: Spawn) {
        let Spawn {
            pool,
            count,
            respawn,
            args,
            cpus,
        } = spawn;
        let pool = pool.as_str();
        if let Err(e) = self.admit_spawn(pool, count, &args, cpus.as_deref()) {
            return self.answer(asker, id, Err(e));
        }
        let Some(reply_to) = self.asker(asker, id) else {
            return;
        };
        let p = self.pool_index(pool).expect("admitted");
        let mut waiting = Vec::new();
        for _ in 0..count {
            match self.add_for(p, respawn, &args, cpus.as_ref()) {
                Ok(started) => waiting.push(started),
                Err(e) => {
                    waiting.push((WorkerId(0), String::new(), answered(Err(e))));
                    break;
                }
            }
        }
        let started = waiting.iter().filter(|(w, ..)| *w != WorkerId(0)).count() as u64;
        if let Some(a) = self.workers.get_mut(&asker) {
            a.counters.spawns += started;
        }
        let kill = self.kill.clone();
        self.tracker.spawn(async move {
            let all = async {
                let mut spawned = Vec::with_capacity(waiting.len());
                for (worker, name, ready) in waiting {
                    match ready.await {
                        Ok(Ok(_)) => spawned.push(SpawnedWorker {
                            id: worker.get(),
                            name,
                        }),
                        Ok(Err(e)) => return Err(refusal(ask_kind::FAILED, e.to_string())),
                        Err(_) => return Err(refusal(ask_kind::FAILED, "the supervisor stopped")),
                    }
                }
                encoded(&spawned)
            };
            if let Some(answer) = kill.run_until_cancelled(all).await {
                kill.run_until_cancelled(reply_to.answer(answer)).await;
            }
        });
    }

    /// Whether `count` more workers, with these arguments and CPUs, fit in
    /// what `pool` allows.
    fn admit_spawn(
        &self,
        pool: &str,
        count: u32,
        args: &[String],
        cpus: Option<&[usize]>,
    ) -> Result<(), nanny_worker::RemoteError> {
        let p = self
            .pool_index(pool)
            .map_err(|e| refusal(ask_kind::REFUSED, e.to_string()))?;
        let p = &self.pools[p];
        let Some(limit) = p.cfg.asks.spawn_limit else {
            let why = format!("pool {pool:?} does not allow spawns (Pool::allow_spawn)");
            return Err(refusal(ask_kind::REFUSED, why));
        };
        let running = p.target();
        if running.saturating_add(count as usize) > limit {
            let why = format!("pool {pool:?} runs {running} of at most {limit}: {count} more do not fit");
            return Err(refusal(ask_kind::REFUSED, why));
        }
        let allowed = &p.cfg.asks.spawn_args;
        if let Some(arg) = args
            .iter()
            .find(|a| !allowed.iter().any(|prefix| a.starts_with(prefix.as_str())))
        {
            let why = format!("pool {pool:?} does not allow the argument {arg:?} (Pool::allow_spawn_args)");
            return Err(refusal(ask_kind::REFUSED, why));
        }
        if let Some(cpus) = cpus {
            let why = |e| format!("pool {pool:?}: {e}");
            (p.cfg.cpus.admits(cpus)).map_err(|e| refusal(ask_kind::REFUSED, why(e)))?;
        }
        Ok(())
    }

    /// One `add_worker` into pool `p`: the new worker's id, name, and the
    /// operation's answer (once it is ready).
    fn add_for(
        &mut self,
        p: usize,
        respawn: bool,
        args: &[String],
        cpus: Option<&Vec<usize>>,
    ) -> Result<Started, Error> {
        let (reply, mut ready): (OpReply, _) = tokio::sync::oneshot::channel();
        let next = self.next_worker;
        let pool = self.pools[p].cfg.name.clone();
        let args = args.iter().map(Into::into).collect();
        let cpus = cpus.cloned();
        self.on_manage(Manage::Add { pool, args, cpus }, reply);
        let ready = match ready.try_recv() {
            Ok(Err(e)) => return Err(e),
            Ok(done) => answered(done), // a receiver is read once
            Err(_) => ready,
        };
        // `launch_add` spawned exactly one worker, the next id.
        let worker = WorkerId(next);
        let w = self.workers.get(&worker).ok_or(Error::ShuttingDown)?;
        let (name, slot) = (w.name.clone(), w.slot);
        let pool = &mut self.pools[p];
        if !respawn && pool.cfg.restart == RestartPolicy::Always {
            // clustr-node's `respawn: false`: a clean exit stays down.
            if let Some(s) = pool.slots.get_mut(slot) {
                s.restart = Some(RestartPolicy::OnFailure);
            }
        }
        Ok((worker, name, ready))
    }
}

/// What a `spawn` question asks for.
pub(super) struct Spawn {
    pub(super) pool: String,
    pub(super) count: u32,
    pub(super) respawn: bool,
    pub(super) args: Vec<String>,
    pub(super) cpus: Option<Vec<usize>>,
}

type Started = (
    WorkerId,
    String,
    tokio::sync::oneshot::Receiver<Result<Option<WorkerId>, Error>>,
);

/// A receiver that already holds `result`.
fn answered(
    result: Result<Option<WorkerId>, Error>,
) -> tokio::sync::oneshot::Receiver<Result<Option<WorkerId>, Error>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(result);
    rx
}
