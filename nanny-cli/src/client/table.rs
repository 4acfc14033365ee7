//! `nanny status`'s table, like pm2's: one row per worker (and per empty
//! slot: a stopped worker, or one waiting to be restarted), in the pools'
//! order, then a summary line.

use std::time::Duration;

use nanny::{Inspect, WorkerHealth};
use serde_json::Value;

/// The columns, in order; the numeric ones are right-aligned.
const HEADERS: [&str; 12] = [
    "name",
    "id",
    "pool",
    "pid",
    "state",
    "uptime",
    "restarts",
    "rss",
    "cpu",
    "in flight",
    "served",
    "err/warn",
];

/// The columns aligned on the right (numbers).
const RIGHT: [bool; 12] = [
    false, true, false, true, false, true, true, true, true, true, true, true,
];

/// The status table of `inspect`, ending with a newline.
pub(crate) fn render(inspect: &Inspect) -> String {
    let rows = rows(inspect);
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    line(&mut out, &HEADERS.map(str::to_owned), &widths);
    for row in &rows {
        line(&mut out, row, &widths);
    }
    out.push_str(&summary(inspect));
    out
}

/// The line under the table: counts, and the failed pools (they restart
/// nothing more: their empty slots stay `down`).
fn summary(inspect: &Inspect) -> String {
    let running = inspect.count_running_workers();
    let mut text = format!(
        "{} pool{}, {} worker{} ({running} running), {} queued",
        inspect.pools.len(),
        plural(inspect.pools.len()),
        inspect.count_workers(),
        plural(inspect.count_workers()),
        inspect.pools.iter().map(|p| p.queued).sum::<usize>(),
    );
    let failed: Vec<&str> = (inspect.pools.iter())
        .filter(|p| p.failed)
        .map(|p| p.name.as_str())
        .collect();
    if !failed.is_empty() {
        text.push_str(&format!("; failed (restart budget spent): {}", failed.join(", ")));
    }
    text.push('\n');
    text
}

/// Fills each worker's `cpu_time` in a `GET /v1/status` answer from a
/// `GET /v1/workers` one (`[WorkerHealth]`, which reads it; the snapshot
/// does not). A worker gone between the two calls keeps `null`.
pub(crate) fn add_cpu_times(status: &mut Value, health: &Value) {
    let Some(workers) = status["workers"].as_array_mut() else {
        return;
    };
    let cpu_of = |id: &Value| {
        (health.as_array().into_iter().flatten())
            .find(|h| &h["id"] == id)
            .map(|h| h["cpu_time"].clone())
    };
    for w in workers {
        if let Some(cpu) = cpu_of(&w["id"]).filter(|c| !c.is_null()) {
            w["cpu_time"] = cpu;
        }
    }
}

/// One table line, cells padded to `widths`, two spaces apart.
fn line(out: &mut String, cells: &[String; 12], widths: &[usize; 12]) {
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        let pad = widths[i].saturating_sub(cell.chars().count());
        if RIGHT[i] {
            text.push_str(&" ".repeat(pad));
            text.push_str(cell);
        } else {
            text.push_str(cell);
            text.push_str(&" ".repeat(pad));
        }
    }
    out.push_str(text.trim_end());
    out.push('\n');
}

/// The rows: each pool's slots in order (a live worker, or its empty
/// slot), then the pool's workers no slot holds (old ones draining during a
/// reload).
fn rows(inspect: &Inspect) -> Vec<[String; 12]> {
    let mut rows = Vec::new();
    for pool in &inspect.pools {
        let mut shown = Vec::new();
        for slot in &pool.slots {
            match slot
                .worker
                .and_then(|id| inspect.workers.iter().find(|w| w.id == id))
            {
                Some(w) => {
                    shown.push(w.id);
                    rows.push(worker_row(w));
                }
                None => rows.push(empty_row(&slot.name, &pool.name, slot.stopped)),
            }
        }
        let others = inspect
            .workers
            .iter()
            .filter(|w| w.pool == pool.name && !shown.contains(&w.id));
        rows.extend(others.map(worker_row));
    }
    rows
}

/// A live worker's row.
fn worker_row(w: &WorkerHealth) -> [String; 12] {
    let state = serde_json::to_value(w.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", w.state).to_lowercase());
    [
        w.name.clone(),
        // The number the selectors take (its `Display` is `w3`).
        serde_json::to_value(w.id).map_or_else(|_| w.id.to_string(), |v| v.to_string()),
        w.pool.clone(),
        w.pid.to_string(),
        state,
        duration(w.uptime),
        w.restarts.to_string(),
        bytes(w.rss_bytes),
        w.cpu_time.map_or_else(|| "-".to_owned(), cpu),
        w.in_flight.to_string(),
        w.served.to_string(),
        format!("{}/{}", w.errors + w.panics + w.handler_errors, w.warnings),
    ]
}

/// An empty slot's row: stopped on request, or down (waiting to restart).
fn empty_row(name: &str, pool: &str, stopped: bool) -> [String; 12] {
    let dash = || "-".to_owned();
    let state = if stopped { "stopped" } else { "down" };
    [
        name.to_owned(),
        dash(),
        pool.to_owned(),
        dash(),
        state.to_owned(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
    ]
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `42s`, `5m`, `3h`, `2d`: the largest whole unit.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// CPU time with a tenth of a second.
fn cpu(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `512 B`, `12.3 MiB`...
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
