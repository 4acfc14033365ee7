//! Building the supervisor task from a checked configuration and starting
//! it: the channels, the pools' state, the listeners, the signal task. The
//! task's loop and its handlers are in `task.rs`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;

use super::command::Command;
use super::connections::Connections;
use super::handle::{Defaults, Supervisor};
use super::ledger::Ledger;
use super::ops::Ops;
use super::order::StartOrder;
use super::slots::{KeySource, Slots};
use super::tally::Tally;
use super::task::{Phase, PoolState, Task};
use crate::builder::Config;
use crate::error::StartError;
use crate::restart::RestartBudget;
use crate::router::Router;

/// Commands waiting for the task; senders wait when it is full.
const COMMAND_CAPACITY: usize = 1024;
/// Events from all link tasks; a link task waits when it is full, which
/// throttles a flooding worker without blocking the supervisor task.
const LINK_CAPACITY: usize = 4096;

/// Starts the supervisor task; workers are spawned by the task itself (a
/// long-lived runtime thread: see `worker::spawn` on `PR_SET_PDEATHSIG`).
pub(crate) fn spawn(mut cfg: Config) -> Result<Supervisor, StartError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(crate::error::ConfigError::NotInRuntime.into());
    }
    let (init, containment) = crate::descendants::choose(&cfg.descendants);
    (cfg.init, cfg.containment) = (init, Some(containment));
    let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
    let (events, _) = broadcast::channel(cfg.event_capacity);
    let (links_tx, links_rx) = mpsc::channel(LINK_CAPACITY);
    let defaults = Defaults {
        timeout: cfg.request_timeout,
        retries: cfg.retries,
        max_frame_len: cfg.max_frame_len,
    };
    let gone = Arc::new(AtomicBool::new(false));
    let mut slot_keys = KeySource::default();
    let pools = cfg
        .pools
        .iter()
        .map(|p| {
            let settings = cfg.defaults.with(&p.settings);
            PoolState {
                budget: RestartBudget::new(settings.max_restarts, settings.restart_window),
                settings,
                cfg: p.clone(),
                slots: Slots::new(p.workers, p.logical_ids.clone(), &mut slot_keys),
                router: Router::new(),
                failed: false,
            }
        })
        .collect();
    let tracker = TaskTracker::new();
    let stop_signals = CancellationToken::new();
    let stop_signal = crate::exit::SignalRecord::shared();
    if cfg.handle_signals {
        tracker.spawn(super::signals::handle_signals(
            tx.downgrade(),
            stop_signals.clone(),
            Arc::clone(&stop_signal),
        ));
    }
    let listeners = super::listeners::bind_listeners(&mut cfg)?;
    // Last of what can fail: nothing of it is left running when spawn fails.
    let queue = start_queue(&cfg, &tx, &tracker, &stop_signals)?;
    let spin = cfg.spin.filter(|_| spin_helps()).map(|window| {
        let spin = nanny_worker::spin::Spin::new(window);
        // On the runtime that runs the task; ends when the task finishes.
        tracker.spawn(Arc::clone(&spin).run(stop_signals.child_token()));
        spin
    });
    let conns = Connections::new(cfg.pools.len());
    let ledger = Ledger::new(cfg.pools.len(), cfg.max_queue);
    let order = StartOrder::new(cfg.pools.len());
    let tally = Tally::new(cfg.pools.len());
    let task = Task {
        spin,
        cfg,
        commands,
        commands_open: true,
        links_rx,
        links_tx,
        timers: DelayQueue::new(),
        pools,
        workers: FxHashMap::default(),
        ledger,
        gone: gone.clone(),
        last_turn: super::pause::coarse_now(),
        soft_kill_timer: None,
        next_worker: 1,
        events: events.clone(),
        phase: Phase::Running,
        ready_waiters: Vec::new(),
        resize_waiters: Vec::new(),
        all_online: false,
        tally,
        tracker,
        kill: CancellationToken::new(),
        released: Vec::new(),
        page_size: crate::worker::spawn::page_size(),
        listeners,
        conns,
        ops: Ops::default(),
        slot_keys,
        order,
        ahead: super::ahead::Ahead::default(),
    };
    tokio::spawn(task.run(stop_signals));
    Ok(Supervisor {
        tx,
        events,
        defaults,
        gone,
        stop_signal,
        queue,
    })
}

/// With a shared queue: its caller, and the scale-out task on the
/// supervisor's tracker (it ends when the task finishes: `stop_signals`
/// is cancelled then, before the tracker is waited for).
fn start_queue(
    cfg: &Config,
    tx: &mpsc::Sender<Command>,
    tracker: &TaskTracker,
    stop_signals: &CancellationToken,
) -> Result<Option<Arc<crate::scaleout::caller::Caller>>, StartError> {
    let Some(queue) = &cfg.queue else {
        return Ok(None);
    };
    let pools: Vec<String> = cfg.pools.iter().map(|p| p.name.clone()).collect();
    let shared = Arc::new(crate::scaleout::shared::Shared::open(queue, pools.clone())?);
    let (caller, cancels) = crate::scaleout::caller::Caller::new(Arc::clone(&shared), cfg.max_queue);
    let stop = stop_signals.child_token();
    let port = super::port::LocalPort::new(tx.downgrade(), pools, stop.clone());
    tracker.spawn(crate::scaleout::run(
        shared,
        Arc::clone(&caller),
        cancels,
        port,
        stop,
    ));
    Ok(Some(caller))
}

/// Whether the low-latency mode can work on this runtime (a current-thread
/// one); warns when it cannot. The workers are told the window either way:
/// theirs may be current-thread runtimes.
fn spin_helps() -> bool {
    let helps = nanny_worker::spin::helps_here();
    if !helps {
        tracing::warn!(
            "spin_before_park: the supervisor runs on a multi-thread runtime, where spinning does not help; \
             it does not spin (its workers still do)"
        );
    }
    helps
}
