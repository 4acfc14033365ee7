//! The other shape, with no task between callers and sockets (see the
//! [module docs](super)): a caller files its request in a shared table and
//! appends its frame to its link's buffer itself (two short locks); a
//! writer task per link writes whatever has gathered, woken by the caller
//! that found it idle; the reader resolves the callers. On a multi-thread
//! runtime.

use std::os::unix::net::UnixStream as StdStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, Notify};

use super::{push_request, read_answers, Answer, Shape, Table};

/// What callers, writers and readers share.
#[derive(Debug, Clone)]
pub struct Direct(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Table>,
    links: Vec<(Mutex<Gathered>, Notify)>,
    next: AtomicU64,
}

/// A link's frames not yet taken by its writer, and whether the writer
/// has been woken for them.
#[derive(Debug, Default)]
struct Gathered {
    bytes: Vec<u8>,
    woken: bool,
}

impl Shape for Direct {
    const CURRENT: bool = false;

    fn start(socks: Vec<StdStream>) -> Self {
        let shared = Arc::new(Shared {
            links: socks.iter().map(|_| Default::default()).collect(),
            ..Shared::default()
        });
        for (link, sock) in socks.into_iter().enumerate() {
            let (rd, wr) = UnixStream::from_std(sock).expect("register").into_split();
            let s = shared.clone();
            tokio::spawn(read_answers(rd, move |batch| {
                let replies: Vec<_> = {
                    let mut pending = s.pending.lock().expect("pending");
                    batch
                        .into_iter()
                        .map(|(id, data)| (pending.remove(&id).expect("a pending id"), data))
                        .collect()
                };
                for (reply, data) in replies {
                    let _ = reply.send((link, data));
                }
                std::future::ready(true)
            }));
            tokio::spawn(write_gathered(link, wr, shared.clone()));
        }
        Self(shared)
    }

    async fn enqueue(&self, payload: &[u8]) -> Answer {
        let (reply, answer) = oneshot::channel();
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        self.0.pending.lock().expect("pending").insert(id, reply);
        let (gathered, wake) = &self.0.links[id as usize % self.0.links.len()];
        {
            let mut g = gathered.lock().expect("gathered");
            push_request(&mut g.bytes, id, payload);
            if !std::mem::replace(&mut g.woken, true) {
                wake.notify_one();
            }
        }
        answer.await.expect("an answer")
    }
}

/// A link's writer: takes what has gathered and writes it, until nothing
/// has; then waits to be woken.
async fn write_gathered(link: usize, mut wr: OwnedWriteHalf, shared: Arc<Shared>) {
    let (gathered, wake) = &shared.links[link];
    let mut out = Vec::new();
    loop {
        wake.notified().await;
        loop {
            {
                let mut g = gathered.lock().expect("gathered");
                if g.bytes.is_empty() {
                    g.woken = false;
                    break;
                }
                std::mem::swap(&mut g.bytes, &mut out);
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}
