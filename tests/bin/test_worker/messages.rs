//! The serving worker's messaging: what it received ([`Inbox`], reported
//! on a [`REPORT`] broadcast) and the messaging [`Cmd`]s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanny_worker::{Error, HandlerError, Message, Request, Worker};

use crate::cmd::Cmd;
use crate::mail::{Fired, Got, Numbered, Report, To, REPORT, REPORTED};

/// Every message and confirmation firing this worker has seen.
#[derive(Default)]
pub(crate) struct Inbox {
    got: Mutex<Vec<Got>>,
    fired: Mutex<Vec<Fired>>,
}

/// Registers the message handlers and the [`REPORT`] hook.
pub(crate) fn listen(worker: &Worker, inbox: &Arc<Inbox>) {
    for handler in ["public", "group", "private"] {
        let ib = Arc::clone(inbox);
        let f = move |msg: Message| ib.record(handler, &msg);
        match handler {
            "public" => worker.on_public(f),
            "group" => worker.on_group(f),
            _ => worker.on_private(f),
        }
    }
    let (w, ib) = (worker.clone(), Arc::clone(inbox));
    worker.on_broadcast(REPORT, move |ev| {
        if let Ok(nonce) = ev.data::<String>() {
            let report = Report {
                nonce,
                worker_id: w.id(),
                got: ib.got.lock().unwrap().clone(),
                fired: ib.fired.lock().unwrap().clone(),
            };
            if let Err(e) = w.emit(REPORTED, &report) {
                eprintln!("nanny-test-worker: cannot report: {e}");
            }
        }
    });
}

impl Inbox {
    fn record(&self, handler: &str, msg: &Message) {
        let n = msg.data::<Numbered>().map_or(u64::MAX, |d| d.n);
        let meta = msg.meta();
        self.got.lock().unwrap().push(Got {
            handler: handler.to_owned(),
            from: meta.id,
            name: meta.name.clone(),
            pid: meta.pid,
            pool: meta.pool.clone(),
            n,
        });
    }
}

/// What [`handle`] gives back: a request that is not about messaging.
type NotMine = Option<(Cmd, Request)>;

/// Answers a messaging [`Cmd`]; gives any other back with its request.
pub(crate) async fn handle(
    worker: &Worker,
    inbox: &Arc<Inbox>,
    cmd: Cmd,
    req: Request,
) -> Result<NotMine, HandlerError> {
    match cmd {
        Cmd::Publish {
            to,
            first,
            count,
            pad,
        } => {
            for n in first..first + count {
                let data = Numbered { n, pad: vec![7; pad] };
                publish(worker, &to, &data).await?;
            }
            req.respond(&count)?;
        }
        Cmd::Confirm(identifier) => {
            worker.emit_confirmation(&identifier)?;
            req.respond(&worker.id())?;
        }
        Cmd::ListenConfirmations { n, identifier } => {
            let ib = Arc::clone(inbox);
            let id = identifier.clone();
            worker.on_confirmation(n, &identifier, move |metas| {
                let from = metas.iter().map(|m| m.id).collect();
                ib.fired.lock().unwrap().push(Fired {
                    identifier: id.clone(),
                    from,
                });
            });
            req.respond(&worker.id())?;
        }
        Cmd::ClusterInfo => req.respond(&worker.cluster_info().await?)?,
        Cmd::Stats => req.respond(&worker.stats().await?)?,
        Cmd::BlockUntil(path) => {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(&path).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            req.respond(&worker.id())?;
        }
        other => return Ok(Some((other, req))),
    }
    Ok(None)
}

/// One publish, retried while the writer queue is full.
async fn publish(worker: &Worker, to: &To, data: &Numbered) -> Result<(), Error> {
    loop {
        let sent = match to {
            To::Public => worker.publish_public(data),
            To::Group(g) => worker.publish_group(g, data),
            To::Name(name) => worker.publish_private(name.as_str(), data),
            To::Id(id) => worker.publish_private(*id, data),
        };
        match sent {
            Err(Error::QueueFull) => tokio::time::sleep(Duration::from_millis(1)).await,
            other => return other,
        }
    }
}
