//! The supervisor task: its state, its loop, and the commands it serves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::{delay_queue, DelayQueue};

use super::command::{Command, Reply};
use super::connections::Connections;
pub(super) use super::entries::{PoolState, WorkerEntry};
use super::ledger::{self, Ledger};
use super::listeners::ListenerState;
use super::ops::{OpId, Ops};
use super::order::StartOrder;
use super::queue::QueueNews;
use super::slots::{KeySource, SlotKey};
use super::tally::Tally;
use crate::builder::Config;
use crate::error::Error;
use crate::events::Event;
use crate::health::WorkerId;
use crate::worker::link::LinkEvent;

/// The most inputs handled in one turn of the loop: beyond the first, link
/// events and commands already waiting (see [`Task::waiting_input`]). A
/// timer that fell due waits at most this many inputs.
const TURN_BATCH: usize = 64;

/// A timer of the supervisor task about workers and phases (request
/// timers belong to the [`Ledger`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    /// Refill a pool slot.
    Restart { pool: usize, slot: SlotKey },
    /// A rolling operation's `reload_delay` between two workers.
    OpDelay(OpId),
    /// A worker had `start_timeout` to say ready.
    StartTimeout(WorkerId),
    /// A stopping worker had `force_stop_delay` to exit.
    ForceKill(WorkerId),
    /// A draining worker had `drain_timeout` to finish its requests.
    DrainTimeout(WorkerId),
    /// A soft kill had `drain_timeout` to serve what was queued.
    SoftKillTimeout,
    /// A failed listener had `server_restart_delay` to wait.
    ListenerRestart(usize),
}

pub(super) enum Phase {
    Running,
    /// Soft kill: serve what is queued, then stop every worker.
    Draining(Vec<Reply<()>>),
    /// Hard kill (or every handle dropped).
    Killing(Vec<Reply<()>>),
}

pub(super) struct Task {
    pub(super) cfg: Config,
    /// The low-latency mode's spinner, touched by each command and link
    /// event ([`Builder::spin_before_park`](crate::Builder::spin_before_park)).
    pub(super) spin: Option<Arc<nanny_worker::spin::Spin>>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) commands_open: bool,
    pub(super) links_rx: mpsc::Receiver<LinkEvent>,
    pub(super) links_tx: mpsc::Sender<LinkEvent>,
    pub(super) timers: DelayQueue<Timer>,
    pub(super) pools: Vec<PoolState>,
    /// Boxed: a table of entries of ~600 bytes, kept at most 7/8 full,
    /// cost up to 1.3 KiB per worker.
    pub(super) workers: FxHashMap<WorkerId, Box<WorkerEntry>>,
    /// Every pending request: queues, in-flight sets, request timers.
    pub(super) ledger: Ledger,
    /// Set by a handle whose `Cancel` found the command queue full: the
    /// ledger is swept for callers that have gone (see [`ledger`](super::ledger)).
    pub(super) gone: Arc<AtomicBool>,
    /// When the loop last took an input (coarse monotonic time), to notice
    /// a pause of the whole process (see [`Task::catch_up`]).
    pub(super) last_turn: Duration,
    /// The soft kill's `drain_timeout`.
    pub(super) soft_kill_timer: Option<delay_queue::Key>,
    pub(super) next_worker: u64,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) phase: Phase,
    pub(super) ready_waiters: Vec<Reply<Result<(), Error>>>,
    pub(super) resize_waiters: Vec<(usize, Reply<Result<(), Error>>)>,
    pub(super) all_online: bool,
    /// The counters, total and per pool (see [`super::tally`]).
    pub(super) tally: Tally,
    pub(super) tracker: TaskTracker,
    /// Tripped by a hard kill: stream pumps stop.
    pub(super) kill: CancellationToken,
    pub(super) page_size: u64,
    /// Accepted attachments, closed once the current event is handled.
    /// Closing the last copy of a socket is costly (~5 µs); an answer that
    /// came with `Accepted` is delivered first.
    pub(super) released: Vec<crate::attach::Source>,
    /// The listeners, bound at spawn (see [`crate::listen`]).
    pub(super) listeners: Vec<ListenerState>,
    /// Their connections between accept and take.
    pub(super) conns: Connections,
    /// Management operations under way (see `manage`).
    pub(super) ops: Ops,
    /// Keys for new slots.
    pub(super) slot_keys: KeySource,
    /// How far the start in pool order has come (see [`super::order`]).
    pub(super) order: StartOrder,
    /// Frames written to workers' sockets by this task (see [`super::ahead`]).
    pub(super) ahead: super::ahead::Ahead,
}

/// What one turn of the loop took.
pub(super) enum Input {
    Link(LinkEvent),
    /// A task timer and when it was due.
    Timer(Timer, Instant),
    /// A request timer and when it was due.
    Request(ledger::Expired, Instant),
    Command(Option<Command>),
    /// The queue backend has new requests for a pool.
    Arrived(usize),
    /// A listener's accept task has a connection or a failure.
    Listener(crate::listen::accept::ListenerEvent),
    Pulse,
}

impl Task {
    pub(super) async fn run(mut self, stop_signals: CancellationToken) {
        self.start_listeners();
        self.advance_start();
        let mut pulse = tokio::time::interval(self.cfg.pulse);
        pulse.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.last_turn = super::pause::coarse_now(); // the first spawns are no pause
        loop {
            // Before every wait: what the last turn (or the start) wrote
            // ahead goes out (see `ahead`).
            self.flush_ahead();
            if self.finished() {
                break;
            }
            let input = tokio::select! {
                biased;
                Some(event) = self.links_rx.recv() => Input::Link(event),
                Some(timer) = futures::future::poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    let due = timer.deadline().into_std();
                    Input::Timer(timer.into_inner(), due)
                }
                input = futures::future::poll_fn(|cx| self.ledger.poll_next(cx)) => match input {
                    ledger::LedgerInput::Timer(expired, at) => Input::Request(expired, at),
                    ledger::LedgerInput::News(QueueNews::Arrived { pool }) => Input::Arrived(pool),
                },
                Some(event) = self.conns.listener_rx.recv() => Input::Listener(event),
                command = self.commands.recv(), if self.commands_open => Input::Command(command),
                _ = pulse.tick() => Input::Pulse,
            };
            let mut next = Some(input);
            let mut taken = 0;
            while let Some(input) = next.take() {
                if let (Some(spin), Input::Link(_) | Input::Command(_)) = (&self.spin, &input) {
                    spin.touch();
                }
                // The pause check once a turn: the inputs taken after the
                // first are no pause (a turn is at most TURN_BATCH inputs).
                let input = if taken == 0 {
                    self.catch_up(input)
                } else {
                    Some(input)
                };
                if let Some(input) = input {
                    self.on_input(input);
                }
                self.after_event();
                self.released.clear();
                taken += 1;
                if taken < TURN_BATCH && !self.finished() {
                    next = self.waiting_input();
                }
            }
        }
        self.finish(stop_signals).await;
    }

    /// A link event or a command that is already waiting, taken without a
    /// turn of the select: under load most inputs are these, and each turn
    /// polls both timer wheels. Link events first, as in the select.
    fn waiting_input(&mut self) -> Option<Input> {
        if let Ok(event) = self.links_rx.try_recv() {
            return Some(Input::Link(event));
        }
        if !self.commands_open {
            return None;
        }
        // Closed (every handle gone) is left to the select's `recv`.
        self.commands.try_recv().ok().map(|c| Input::Command(Some(c)))
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Link(event) => self.on_link(event),
            Input::Timer(timer, _) => self.on_timer(timer),
            Input::Request(expired, _) => self.on_request_timer(expired),
            Input::Command(Some(command)) => self.on_command(command),
            Input::Command(None) => {
                // Every handle is gone: nothing can wait for work any more.
                self.commands_open = false;
                self.begin_kill(None);
            }
            Input::Arrived(pool) => self.dispatch(pool),
            Input::Listener(event) => self.on_listener_event(event),
            Input::Pulse => self.on_pulse(),
        }
    }

    fn finished(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Draining(_) => self.workers.is_empty() && self.ledger.queued_total() == 0,
            Phase::Killing(_) => self.workers.is_empty(),
        }
    }

    async fn finish(mut self, stop_signals: CancellationToken) {
        let killed = matches!(self.phase, Phase::Killing(_));
        for id in self.ledger.ids() {
            self.ledger.resolve(
                id,
                Err(if killed {
                    Error::Killed
                } else {
                    Error::ShuttingDown
                }),
            );
        }
        for w in self.ready_waiters.drain(..) {
            let _ = w.send(Err(Error::ShuttingDown));
        }
        for (_, w) in self.resize_waiters.drain(..) {
            let _ = w.send(Err(Error::ShuttingDown));
        }
        self.ops.abort_all(&Error::ShuttingDown);
        // No detached task outlives shutdown: the signal task is told to
        // stop, link tasks have ended with their processes, and one still
        // waiting to report something is let go (nobody reads it now).
        self.ledger.close().await;
        self.stop_listeners();
        self.conns.close_all();
        self.conns.listener_rx.close();
        for l in &mut self.listeners {
            l.socket = None;
            l.remove_path();
        }
        self.links_rx.close();
        stop_signals.cancel();
        self.kill.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let waiters = match std::mem::replace(&mut self.phase, Phase::Running) {
            Phase::Draining(w) | Phase::Killing(w) => w,
            Phase::Running => Vec::new(),
        };
        for w in waiters {
            let _ = w.send(());
        }
    }

    pub(super) fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    pub(super) fn accepting(&self) -> bool {
        matches!(self.phase, Phase::Running)
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Enqueue(request) => self.on_enqueue(request),
            Command::Cancel(id) => self.on_cancel(id),
            Command::Ready(reply) => self.ready_waiters.push(reply),
            Command::Capacity { pool, reply } => {
                let _ = reply.send(self.free_capacity(pool));
            }
            Command::Health(reply) => {
                let _ = reply.send(self.health());
            }
            Command::Inspect(reply) => {
                let _ = reply.send(self.inspect());
            }
            Command::Signal {
                worker,
                signal,
                reply,
            } => {
                let _ = reply.send(self.on_signal(worker, signal));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::PoolStats { pool, reply } => {
                let _ = reply.send(self.pool_index(&pool).map(|p| self.pool_stats(p)));
            }
            Command::Broadcast {
                event,
                payload,
                socket,
            } => self.on_broadcast(event, payload, socket),
            Command::Resize { pool, workers, reply } => self.on_resize(&pool, workers, reply),
            Command::ResetFailed { pool, reply } => {
                let result = self.on_reset_failed(&pool);
                let _ = reply.send(result);
            }
            Command::Manage { call, reply } => self.on_manage(call, reply),
            Command::ListenerFds(reply) => {
                let _ = reply.send(self.listener_fds());
            }
            Command::StopAccepting(reply) => {
                self.stop_accepting();
                let _ = reply.send(());
            }
            Command::SoftKill(reply) => self.begin_drain(reply),
            Command::HardKill(reply) => self.begin_kill(Some(reply)),
            Command::ResetStats { worker, reply } => {
                let _ = reply.send(self.on_reset_stats(&worker));
            }
        }
    }

    pub(super) fn pool_index(&self, name: &str) -> Result<usize, Error> {
        self.pools
            .iter()
            .position(|p| p.cfg.name == name)
            .ok_or_else(|| Error::UnknownPool {
                pool: name.to_owned(),
            })
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Restart { pool, slot } => self.on_restart_timer(pool, slot),
            Timer::OpDelay(op) => self.ops.delay_over(op),
            Timer::StartTimeout(w) => self.on_start_timeout(w),
            Timer::ForceKill(w) => self.on_force_kill(w),
            Timer::DrainTimeout(w) => self.on_drain_timeout(w),
            Timer::SoftKillTimeout => self.on_soft_kill_timeout(),
            Timer::ListenerRestart(l) => self.on_listener_restart(l),
        }
    }

    pub(super) fn cancel_timer(&mut self, key: Option<delay_queue::Key>) {
        if let Some(key) = key {
            let _ = self.timers.try_remove(&key);
        }
    }

    /// Work that follows any event: settle waiters, progress a drain,
    /// re-home keyed waiters whose owners changed.
    fn after_event(&mut self) {
        // A plain load first: the flag's cache line stays shared until a
        // handle raises it.
        if self.gone.load(Ordering::Relaxed) && self.gone.swap(false, Ordering::Relaxed) {
            self.sweep_gone();
        }
        if matches!(self.phase, Phase::Draining(_)) {
            self.progress_drain();
        } else if !self.order.complete() && self.accepting() {
            self.advance_start();
        }
        if !self.ready_waiters.is_empty() || !self.all_online {
            self.check_ready();
        }
        if !self.resize_waiters.is_empty() {
            self.check_resized();
        }
        if !self.ops.is_empty() {
            self.advance_ops();
        }
        self.rehome_keyed();
    }
}
