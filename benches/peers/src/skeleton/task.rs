//! nanny's shape, bare: one task owns the pending table (see the
//! [module docs](super)).

use std::os::unix::net::UnixStream as StdStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::{push_request, read_answers, Answer, Shape, Table};

struct Command {
    id: u64,
    payload: Vec<u8>,
    reply: oneshot::Sender<Answer>,
}

/// A batch of one read's answers, from the link `.0`.
type Answers = (usize, Vec<(u64, Vec<u8>)>);

/// The handle callers hold; on a current-thread runtime when `CURRENT`.
#[derive(Debug, Clone)]
pub struct OneTask<const CURRENT: bool> {
    commands: mpsc::Sender<Command>,
    next: Arc<AtomicU64>,
}

impl<const CURRENT: bool> Shape for OneTask<CURRENT> {
    const CURRENT: bool = CURRENT;

    fn start(socks: Vec<StdStream>) -> Self {
        let (commands, rx) = mpsc::channel(1024);
        let (answers, answers_rx) = mpsc::channel::<Answers>(4096);
        let mut writers = Vec::new();
        for (link, sock) in socks.into_iter().enumerate() {
            let (rd, wr) = UnixStream::from_std(sock).expect("register").into_split();
            let to = answers.clone();
            // The reader waits for room, as nanny's link tasks do.
            tokio::spawn(read_answers(rd, move |batch| {
                let to = to.clone();
                async move { to.send((link, batch)).await.is_ok() }
            }));
            writers.push((wr, Vec::new()));
        }
        tokio::spawn(dispatch(rx, answers_rx, writers));
        Self {
            commands,
            next: Arc::default(),
        }
    }

    async fn enqueue(&self, payload: &[u8]) -> Answer {
        let (reply, answer) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let command = Command {
            id,
            payload: payload.to_vec(),
            reply,
        };
        self.commands.send(command).await.expect("the task runs");
        answer.await.expect("an answer")
    }
}

/// The one task: takes commands and answers, a batch at a time, then
/// writes each link's bytes.
async fn dispatch(
    mut commands: mpsc::Receiver<Command>,
    mut answers: mpsc::Receiver<Answers>,
    mut links: Vec<(OwnedWriteHalf, Vec<u8>)>,
) {
    let (mut pending, mut next_link, count) = (Table::default(), 0, links.len());
    loop {
        let mut on_command = |c: Command, pending: &mut Table| {
            pending.insert(c.id, c.reply);
            push_request(&mut links[next_link].1, c.id, &c.payload);
            next_link = (next_link + 1) % count;
        };
        let on_answers = |(link, batch): Answers, pending: &mut Table| {
            for (id, data) in batch {
                let _ = pending.remove(&id).expect("a pending id").send((link, data));
            }
        };
        tokio::select! {
            biased;
            Some(batch) = answers.recv() => on_answers(batch, &mut pending),
            Some(c) = commands.recv() => on_command(c, &mut pending),
            else => return,
        }
        while let Ok(batch) = answers.try_recv() {
            on_answers(batch, &mut pending);
        }
        while let Ok(c) = commands.try_recv() {
            on_command(c, &mut pending);
        }
        for (wr, out) in &mut links {
            if out.is_empty() {
                continue;
            }
            // A floor's shortcut: the socket takes a 100 B burst at once,
            // and what it does not take is written before the next turn.
            let n = wr.try_write(out).unwrap_or(0);
            if n < out.len() {
                wr.write_all(&out[n..]).await.expect("write");
            }
            out.clear();
        }
    }
}
