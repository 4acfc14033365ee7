//! The process task of one worker: it owns the `Child` (the only code that
//! reaps it and the only code that signals its group, so a signal never
//! reaches a recycled pid) and, for a protocol worker, the read side of its
//! link ([`Reader`]), so an idle worker costs one task less.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::LinkEvent;
use super::mailbox::Mailbox;
use super::outbox;
use super::reader::{Reader, Wake};
use super::spawn::Child;
use super::spawn::Keeper;
use crate::events::ExitInfo;
use crate::health::WorkerId;

/// The worker's process group, and its namespace's keeper if it has one.
#[derive(Debug)]
pub(super) struct Group {
    pgid: Pid,
    keeper: Option<Keeper>,
}

impl Group {
    /// The group of process `pid` (its leader), with its keeper.
    pub(super) fn new(pid: u32, keeper: Option<Keeper>) -> Self {
        Self {
            pgid: Pid::from_raw(pid as i32),
            keeper,
        }
    }

    /// Sends `signal` to the group; SIGKILL to the namespace too. The
    /// child is not reaped yet (only this task reaps it), so its pid and
    /// group are still ours.
    fn deliver(&mut self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
        if signal == Signal::SIGKILL {
            if let Some(keeper) = self.keeper.as_mut() {
                keeper.kill();
            }
        }
    }
}

/// What the process task of one worker owns.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) id: WorkerId,
    pub(super) child: Child,
    pub(super) group: Group,
    /// `None` for a plain program, and once the socket has ended.
    pub(super) reader: Option<Reader>,
    /// Signals to deliver, SIGKILL past the queue's bound.
    pub(super) signals: outbox::Receiver<Signal>,
    /// Until every sender of `signals` has gone.
    pub(super) signals_open: bool,
    /// Closed at the exit: the writer ends.
    pub(super) mailbox: Arc<Mailbox>,
    /// Cancelled at the exit: the output capture ends (`silent` pools).
    pub(super) gone: Option<CancellationToken>,
    pub(super) events: mpsc::Sender<LinkEvent>,
}

impl Process {
    /// Starts the task on `tracker`: it delivers signals and forwards what
    /// the reader reads until the child is reaped, then reports the exit.
    pub(super) fn spawn(self, tracker: &TaskTracker) {
        // An async block, not an `async fn run(self)`: that would hold
        // `self` twice (its argument and its local), about 600 bytes more
        // in every idle worker's task.
        let mut process = self;
        tracker.spawn(async move {
            let status = process.until_exit().await;
            // Boxed: the exit's futures are large and run once; inline,
            // every idle worker's task would carry them.
            Box::pin(process.finish(status)).await;
        });
    }

    /// Delivers signals and reads until the child is reaped.
    async fn until_exit(&mut self) -> io::Result<ExitStatus> {
        loop {
            let reader = self.reader.as_ref();
            tokio::select! {
                status = self.child.wait() => return status,
                open = self.signals.ready(), if self.signals_open => self.deliver(open),
                wake = async { reader.expect("open").readable().await }, if reader.is_some() => {
                    self.read(wake).await;
                }
            }
        }
    }

    /// Delivers what is queued (`open`: as [`outbox::Receiver::ready`]
    /// said).
    fn deliver(&mut self, open: bool) {
        self.signals_open = open;
        let group = &mut self.group;
        self.signals.drain_each(|signal| group.deliver(signal));
    }

    /// One read. A full link queue can hold it; signals meanwhile (a
    /// SIGKILL) are delivered at once.
    async fn read(&mut self, wake: Wake) {
        let Self {
            reader,
            signals,
            signals_open,
            group,
            ..
        } = self;
        let open = {
            let read = reader.as_mut().expect("open").read(wake);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    open = &mut read => break open,
                    open = signals.ready(), if *signals_open => {
                        *signals_open = open;
                        signals.drain_each(|signal| group.deliver(signal));
                    }
                }
            }
        };
        if !open {
            *reader = None;
        }
    }

    /// After the reap: what the worker wrote, its descendants, its exit.
    async fn finish(self, status: io::Result<ExitStatus>) {
        let Self {
            id,
            group,
            reader,
            mailbox,
            gone,
            events,
            ..
        } = self;
        // The reader forwards what the worker wrote before dying, then
        // ends; only then is the exit reported, so no answer arrives after
        // it.
        mailbox.close();
        if let Some(gone) = gone {
            gone.cancel();
        }
        if let Some(reader) = reader {
            reader.drain().await;
        }
        // Its descendants go before its exit is told: a replacement never
        // meets what the old worker started (a port, a lock).
        // Without a namespace, its group gets the SIGTERM the namespace's
        // init would send. The group outlives its leader only while it has
        // members, and a pid is not handed out again while its group is in
        // use, so this reaches the worker's own group or nobody.
        match group.keeper {
            Some(keeper) => keeper.end().await,
            None => {
                let _ = killpg(group.pgid, Signal::SIGTERM);
            }
        }
        let info = match status {
            Ok(s) => ExitInfo {
                code: s.code(),
                signal: s.signal(),
            },
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        let _ = events.send(LinkEvent::Exited(id, info)).await;
    }
}
