//! `nanny reload [POOL]` with progress: while `POST /v1/reload` rolls the
//! workers, a thread follows `GET /v1/events` and prints each worker as its
//! replacement comes online: `reloaded web:01 (pid 123 → 456) [1/4]`.
//!
//! The slots and their old pids come from `GET /v1/status` before the
//! reload; a `worker-spawned` event gives a new worker's slot (pool and
//! logical id), its `worker-online` says it replaced the old one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{CliError, Client};

/// How long, once the reload has answered, the progress lines still in the
/// event stream may take to arrive.
const GRACE: Duration = Duration::from_secs(5);

/// The longest event line read.
const MAX_LINE: u64 = 1 << 20;

/// A slot to replace: `(pool, logical id)` → its name and old pid.
type Slots = HashMap<(String, u64), (String, u32)>;

/// Reloads `pool` (every pool if `None`), printing progress.
pub(crate) fn run(client: &Client, pool: Option<&str>) -> Result<(), CliError> {
    let slots = slots(client, pool)?;
    let total = slots.len();
    // Subscribed once the response has begun: no event of the reload is
    // missed. Without the stream, the reload still runs, silently.
    let (tx, rx) = mpsc::sync_channel::<()>(total.max(1));
    let following = match client.get_stream("/v1/events", &[]) {
        Ok(response) => {
            let reader = BufReader::new(response.into_body().into_reader());
            // Ends when the stream does, or with the process.
            std::thread::spawn(move || follow(reader, slots, &tx));
            true
        }
        Err(e) => {
            eprintln!("nanny: no progress to show ({e})");
            false
        }
    };
    let answer = client.post("/v1/reload", &json!({ "pool": pool }))?;
    let mut shown = 0;
    while following && shown < total && rx.recv_timeout(GRACE).is_ok() {
        shown += 1;
    }
    let pools = super::names(&answer["reloaded"]);
    super::out(&format!(
        "reloaded {} ({total} worker{})\n",
        if pools.is_empty() {
            "nothing".to_owned()
        } else {
            pools.join(", ")
        },
        if total == 1 { "" } else { "s" }
    ))
}

/// The running slots of `pool` (or of every pool), from the status.
fn slots(client: &Client, pool: Option<&str>) -> Result<Slots, CliError> {
    let inspect: nanny::Inspect = serde_json::from_value(client.get("/v1/status", &[])?)
        .map_err(|e| CliError::Failed(format!("the status is not in the shape expected: {e}")))?;
    if let Some(p) = pool {
        if !inspect.pools.iter().any(|i| i.name == p) {
            return Err(CliError::NotFound(format!("no pool named {p:?}")));
        }
    }
    let mut slots = Slots::new();
    for info in inspect.pools.iter().filter(|i| pool.is_none_or(|p| i.name == p)) {
        for slot in info.slots.iter().filter(|s| !s.stopped) {
            if let Some(pid) = slot.pid {
                slots.insert((info.name.clone(), slot.logical_id), (slot.name.clone(), pid));
            }
        }
    }
    Ok(slots)
}

/// Reads the event stream, printing a line (and sending `()`) for each slot
/// whose new worker came online.
fn follow(mut reader: impl BufRead, mut slots: Slots, done: &mpsc::SyncSender<()>) {
    let total = slots.len();
    // New workers of the slots above, by id, until they are online: at most
    // one per slot still to replace (a slot's later spawn overwrites).
    let mut spawned: HashMap<u64, (String, u64)> = HashMap::new();
    let mut count = 0;
    let mut buf = Vec::new();
    while !slots.is_empty() {
        buf.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(1..) => {}
            _ => return,
        }
        let Some(event) = event_of(&buf) else { continue };
        let data = &event["data"];
        match event["kind"].as_str() {
            Some("worker-spawned") => {
                let key = (
                    data["pool"].as_str().unwrap_or_default().to_owned(),
                    data["logical_id"].as_u64().unwrap_or(u64::MAX),
                );
                if let (true, Some(id)) = (slots.contains_key(&key), data["worker"].as_u64()) {
                    spawned.retain(|_, k| *k != key);
                    spawned.insert(id, key);
                }
            }
            Some("worker-online") => {
                let Some(key) = data["worker"].as_u64().and_then(|id| spawned.remove(&id)) else {
                    continue;
                };
                let Some((name, old)) = slots.remove(&key) else {
                    continue;
                };
                count += 1;
                let new = data["pid"].as_u64().unwrap_or_default();
                let _ = super::out(&format!(
                    "reloaded {name} (pid {old} → {new}) [{count}/{total}]\n"
                ));
                let _ = done.try_send(());
            }
            _ => {}
        }
    }
}

/// The `{kind, data}` JSON of an SSE `data:` line.
fn event_of(line: &[u8]) -> Option<Value> {
    let line = std::str::from_utf8(line).ok()?;
    serde_json::from_str(line.strip_prefix("data:")?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_once_its_new_worker_is_online() {
        let mut slots = Slots::new();
        slots.insert(("web".into(), 1), ("web:01".into(), 100));
        slots.insert(("web".into(), 2), ("web:02".into(), 200));
        let stream = "event: worker-spawned\n\
            data: {\"kind\":\"worker-spawned\",\"data\":{\"worker\":7,\"pool\":\"web\",\"pid\":300,\"logical_id\":1}}\n\n\
            event: worker-spawned\n\
            data: {\"kind\":\"worker-spawned\",\"data\":{\"worker\":8,\"pool\":\"other\",\"pid\":301,\"logical_id\":2}}\n\n\
            event: worker-online\n\
            data: {\"kind\":\"worker-online\",\"data\":{\"worker\":8,\"pool\":\"other\",\"pid\":301}}\n\n\
            event: worker-online\n\
            data: {\"kind\":\"worker-online\",\"data\":{\"worker\":7,\"pool\":\"web\",\"pid\":300}}\n\n";
        let (tx, rx) = mpsc::sync_channel(2);
        follow(stream.as_bytes(), slots, &tx);
        assert!(rx.try_recv().is_ok(), "web:01 was replaced");
        assert!(rx.try_recv().is_err(), "the other pool's worker is not web:02");
    }
}
