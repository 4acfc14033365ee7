//! One scrape: the supervisor's snapshot (`inspect()`) and the restart
//! counts, written as OpenMetrics text by prometheus-client. The registry
//! is built anew for each scrape (one collector over the snapshot), so no
//! figure but the restarts is kept here: the rest are the library's own
//! and cannot drift from what `inspect()` says.

use std::collections::BTreeMap;
use std::fmt;

use nanny::{Distribution, Inspect, LatencyHistogram, WorkerHealth};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::restarts::{Reason, Restarts};

/// What one scrape reports.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The supervisor, as of the scrape.
    pub(crate) inspect: Inspect,
    /// Restarts per pool and reason, as of the scrape.
    pub(crate) restarts: Vec<(String, [u64; Reason::ALL.len()])>,
}

impl Snapshot {
    /// The snapshot of `inspect`, with `restarts` of its pools.
    pub(crate) fn new(inspect: Inspect, restarts: &Restarts) -> Self {
        let restarts = (inspect.pools.iter())
            .map(|p| (p.name.clone(), Reason::ALL.map(|r| restarts.get(&p.name, r))))
            .collect();
        Self { inspect, restarts }
    }
}

/// The exposition of `snapshot`, ending in `# EOF`.
pub(crate) fn render(snapshot: Snapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix("nanny");
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// A family: its name (under the `nanny_` prefix), help, unit and type.
struct Family(&'static str, &'static str, Option<Unit>, MetricType);

const QUEUE_DEPTH: Family = Family(
    "queue_depth",
    "Requests waiting in the pool's queue.",
    None,
    MetricType::Gauge,
);
const IN_FLIGHT: Family = Family(
    "in_flight",
    "Requests sent to a worker and not answered yet.",
    None,
    MetricType::Gauge,
);
const REQUESTS: Family = Family(
    "requests",
    "Requests by how they ended: answered, failed, cancelled (the caller left), rejected (queue full), refused (other refusals at the door).",
    None,
    MetricType::Counter,
);
const LATENCY: Family = Family(
    "request_latency",
    "Answered requests by their time from enqueue to answer.",
    Some(Unit::Seconds),
    MetricType::Histogram,
);
const RESTARTS: Family = Family("restarts", "Workers replaced, by why.", None, MetricType::Counter);
const RSS: Family = Family(
    "worker_rss",
    "Resident set size of the worker's process, sampled every pulse.",
    Some(Unit::Bytes),
    MetricType::Gauge,
);
const LAG: Family = Family(
    "worker_runtime_lag",
    "How late the worker runtime's pulse timer fired, from its last heartbeat (protocol workers only).",
    Some(Unit::Seconds),
    MetricType::Gauge,
);
const CONNECTIONS: Family = Family(
    "connections_balanced",
    "Connections a balanced listener accepted and handed to its pool's workers.",
    None,
    MetricType::Counter,
);
const MESSAGES: Family = Family(
    "messages_relayed",
    "Messages between workers the supervisor delivered to this worker.",
    None,
    MetricType::Counter,
);

const SHARED_QUEUE_CONNECTED: Family = Family(
    "shared_queue_connected",
    "1 if the last command to the shared queue's Redis succeeded, else 0 (no sample without a [queue]).",
    None,
    MetricType::Gauge,
);
const SHARED_QUEUE_PRESSURE: Family = Family(
    "shared_queue_under_memory_pressure",
    "1 while this host's available memory is below its [queue] min_available_memory: it takes no work meanwhile.",
    None,
    MetricType::Gauge,
);
const SHARED_QUEUE_RECLAIM: Family = Family(
    "shared_queue_reclaim_idle",
    "Of the requests this host reclaimed from others: the longest idle time since their owner's last renewal (max) and the sum (total), as Redis measured them.",
    Some(Unit::Seconds),
    MetricType::Gauge,
);
const SHARED_QUEUE: Family = Family(
    "shared_queue_operations",
    "What this host did on the shared queue, by operation: sent, read, claimed (reclaimed from another host), completed, fenced (a completion refused: the work had been reclaimed), duplicate (completed twice), lost (a lease lost while running), remote_cancel, handed_back, late_reply (a reply for a request no longer waiting), malformed, error.",
    None,
    MetricType::Counter,
);

/// Every family a scrape has, in order.
#[cfg(test)]
pub(crate) const FAMILIES: [&str; 13] = [
    QUEUE_DEPTH.0,
    IN_FLIGHT.0,
    REQUESTS.0,
    LATENCY.0,
    RESTARTS.0,
    RSS.0,
    LAG.0,
    CONNECTIONS.0,
    MESSAGES.0,
    SHARED_QUEUE_CONNECTED.0,
    SHARED_QUEUE_PRESSURE.0,
    SHARED_QUEUE_RECLAIM.0,
    SHARED_QUEUE.0,
];

/// A value of a family, under its labels.
enum Value {
    Gauge(f64),
    Counter(u64),
    Histogram(LatencyHistogram),
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let pools = &self.inspect.pools;
        family(
            &mut encoder,
            &QUEUE_DEPTH,
            pools
                .iter()
                .map(|p| (pool(p), Value::Gauge(p.stats.queued as f64))),
        )?;
        family(
            &mut encoder,
            &IN_FLIGHT,
            pools
                .iter()
                .map(|p| (pool(p), Value::Gauge(p.stats.in_flight as f64))),
        )?;
        let outcomes = pools.iter().flat_map(|p| {
            let s = &p.stats;
            [
                ("answered", s.answered),
                ("failed", s.failed),
                ("cancelled", s.cancelled),
                ("rejected", s.rejected),
                ("refused", s.refused.saturating_sub(s.rejected)),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("pool", p.name.clone()), ("outcome", outcome.to_owned())],
                    Value::Counter(n),
                )
            })
        });
        family(&mut encoder, &REQUESTS, outcomes)?;
        family(
            &mut encoder,
            &LATENCY,
            pools.iter().map(|p| (pool(p), Value::Histogram(p.stats.latency))),
        )?;
        let restarts = self.restarts.iter().flat_map(|(name, counts)| {
            (Reason::ALL.iter().zip(counts)).map(|(r, n)| {
                (
                    vec![("pool", name.clone()), ("reason", r.label().to_owned())],
                    Value::Counter(*n),
                )
            })
        });
        family(&mut encoder, &RESTARTS, restarts)?;
        let workers = by_slot(&self.inspect.workers);
        family(
            &mut encoder,
            &RSS,
            workers
                .iter()
                .map(|w| (worker(w), Value::Gauge(w.rss_bytes as f64))),
        )?;
        let lags = (workers.iter()).filter_map(|w| {
            w.heartbeat
                .as_ref()
                .map(|h| (worker(w), Value::Gauge(h.lag_us as f64 / 1e6)))
        });
        family(&mut encoder, &LAG, lags)?;
        let balanced = (self.inspect.listeners.iter())
            .filter(|l| l.distribution == Distribution::RoundRobin)
            .map(|l| {
                let labels = vec![("listener", l.name.clone()), ("pool", l.pool.clone())];
                (labels, Value::Counter(l.accepted))
            });
        family(&mut encoder, &CONNECTIONS, balanced)?;
        let messages = workers.iter().map(|w| {
            let c = &w.counters;
            let n = c.public_received + c.group_received + c.private_received + c.confirmations_received;
            (worker(w), Value::Counter(n))
        });
        family(&mut encoder, &MESSAGES, messages)?;
        shared_queue(&mut encoder, self.inspect.queue.as_ref())
    }
}

/// The shared queue's families: their descriptors always, samples with a queue.
fn shared_queue(
    encoder: &mut DescriptorEncoder<'_>,
    q: Option<&nanny::QueueStats>,
) -> Result<(), fmt::Error> {
    let flag = |on: bool| Value::Gauge(if on { 1.0 } else { 0.0 });
    let connected = q.map(|q| (Vec::new(), flag(q.connected)));
    family(encoder, &SHARED_QUEUE_CONNECTED, connected.into_iter())?;
    let pressed = q.map(|q| (Vec::new(), flag(q.under_pressure)));
    family(encoder, &SHARED_QUEUE_PRESSURE, pressed.into_iter())?;
    let reclaim = q.into_iter().flat_map(|q| {
        [("max", q.claim_idle_max_ms), ("total", q.claim_idle_total_ms)]
            .map(|(of, ms)| (vec![("of", of.to_owned())], Value::Gauge(ms as f64 / 1e3)))
    });
    family(encoder, &SHARED_QUEUE_RECLAIM, reclaim)?;
    let operations = q.into_iter().flat_map(|q| {
        [
            ("sent", q.sent),
            ("read", q.reads),
            ("claimed", q.claims),
            ("completed", q.completed),
            ("fenced", q.fenced),
            ("duplicate", q.duplicate_completions),
            ("lost", q.lost),
            ("remote_cancel", q.remote_cancels),
            ("handed_back", q.handed_back),
            ("late_reply", q.late_replies),
            ("malformed", q.malformed),
            ("error", q.errors),
        ]
        .map(|(op, n)| (vec![("operation", op.to_owned())], Value::Counter(n)))
    });
    family(encoder, &SHARED_QUEUE, operations)
}

type Labels = Vec<(&'static str, String)>;

fn pool(p: &nanny::PoolInfo) -> Labels {
    vec![("pool", p.name.clone())]
}

fn worker(w: &WorkerHealth) -> Labels {
    vec![("pool", w.pool.clone()), ("worker", w.name.clone())]
}

/// One worker per slot name: while a slot is recycled its old worker and
/// its replacement share the name, and a label set may appear only once;
/// the newer (higher id) speaks for the slot.
fn by_slot(workers: &[WorkerHealth]) -> Vec<&WorkerHealth> {
    let mut slots: BTreeMap<&str, &WorkerHealth> = BTreeMap::new();
    for w in workers {
        let newest = slots.get(w.name.as_str()).is_none_or(|seen| seen.id < w.id);
        if newest {
            slots.insert(&w.name, w);
        }
    }
    slots.into_values().collect()
}

/// Writes one family: its descriptor, then each labelled value.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    f: &Family,
    values: impl Iterator<Item = (Labels, Value)>,
) -> Result<(), fmt::Error> {
    let Family(name, help, unit, kind) = f;
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), *kind)?;
    for (labels, value) in values {
        let mut sample = metric.encode_family(&labels)?;
        match value {
            Value::Gauge(v) => sample.encode_gauge(&v)?,
            Value::Counter(n) => sample.encode_counter::<NoLabelSet, _, u64>(&n, None)?,
            Value::Histogram(h) => histogram(&mut sample, &h)?,
        }
    }
    Ok(())
}

fn histogram(sample: &mut MetricEncoder<'_>, h: &LatencyHistogram) -> Result<(), fmt::Error> {
    // Per bucket, not cumulative: the encoder adds them up.
    let buckets: Vec<(f64, u64)> = (LatencyHistogram::BOUNDS.iter().map(|b| b.as_secs_f64()))
        .chain([f64::INFINITY])
        .zip(h.counts)
        .collect();
    sample.encode_histogram::<NoLabelSet>(h.sum.as_secs_f64(), h.count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `/v1/status` of `nanny run`, edited: pool `app` with figures
    /// in every counter, slot `app:01` held by a retiring worker (id 1) and
    /// its replacement (id 3), `app:02` with no heartbeat, and a
    /// socket-activated listener beside the balanced one.
    fn fixture() -> Inspect {
        serde_json::from_str(include_str!("testdata/inspect.json")).expect("the fixture parses")
    }

    fn scrape(restarts: &Restarts) -> String {
        render(Snapshot::new(fixture(), restarts)).expect("encodes")
    }

    fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(family) && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn every_family_has_help_and_type_and_the_text_ends_with_eof() {
        let text = scrape(&Restarts::default());
        for name in FAMILIES {
            let full = format!("nanny_{name}");
            let help = text
                .lines()
                .position(|l| l.starts_with(&format!("# HELP {full}")));
            let kind = text
                .lines()
                .position(|l| l.starts_with(&format!("# TYPE {full}")));
            assert!(help.is_some() && kind == help.map(|h| h + 1), "{full}:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn pool_figures_come_from_its_stats() {
        let text = scrape(&Restarts::default());
        assert_eq!(
            lines_of(&text, "nanny_queue_depth"),
            ["nanny_queue_depth{pool=\"app\"} 4.0"]
        );
        assert_eq!(
            lines_of(&text, "nanny_in_flight"),
            ["nanny_in_flight{pool=\"app\"} 1.0"]
        );
        assert_eq!(
            lines_of(&text, "nanny_requests_total"),
            [
                "nanny_requests_total{pool=\"app\",outcome=\"answered\"} 7",
                "nanny_requests_total{pool=\"app\",outcome=\"failed\"} 1",
                "nanny_requests_total{pool=\"app\",outcome=\"cancelled\"} 2",
                "nanny_requests_total{pool=\"app\",outcome=\"rejected\"} 3",
                // refused counts the rejected too: only the other 2 here.
                "nanny_requests_total{pool=\"app\",outcome=\"refused\"} 2",
            ]
        );
    }

    #[test]
    fn the_latency_histogram_is_cumulative_in_seconds() {
        let text = scrape(&Restarts::default());
        let h = lines_of(&text, "nanny_request_latency_seconds");
        assert_eq!(h[0], "nanny_request_latency_seconds_sum{pool=\"app\"} 12.5");
        assert_eq!(h[1], "nanny_request_latency_seconds_count{pool=\"app\"} 7");
        assert_eq!(
            h[2],
            "nanny_request_latency_seconds_bucket{le=\"0.00005\",pool=\"app\"} 1"
        );
        assert_eq!(
            h[4],
            "nanny_request_latency_seconds_bucket{le=\"0.00025\",pool=\"app\"} 3"
        );
        assert_eq!(
            h[13],
            "nanny_request_latency_seconds_bucket{le=\"0.25\",pool=\"app\"} 6"
        );
        assert_eq!(
            h[18],
            "nanny_request_latency_seconds_bucket{le=\"10.0\",pool=\"app\"} 6"
        );
        assert_eq!(
            h[19],
            "nanny_request_latency_seconds_bucket{le=\"+Inf\",pool=\"app\"} 7"
        );
        assert_eq!(h.len(), 2 + LatencyHistogram::BOUNDS.len() + 1);
    }

    #[test]
    fn a_slot_speaks_through_its_newest_worker_and_lag_needs_a_heartbeat() {
        let text = scrape(&Restarts::default());
        assert_eq!(
            lines_of(&text, "nanny_worker_rss_bytes"),
            [
                "nanny_worker_rss_bytes{pool=\"app\",worker=\"app:01\"} 3000.0",
                "nanny_worker_rss_bytes{pool=\"app\",worker=\"app:02\"} 2000.0",
            ]
        );
        assert_eq!(
            lines_of(&text, "nanny_worker_runtime_lag_seconds"),
            ["nanny_worker_runtime_lag_seconds{pool=\"app\",worker=\"app:01\"} 0.25"]
        );
        assert_eq!(
            lines_of(&text, "nanny_messages_relayed_total"),
            [
                "nanny_messages_relayed_total{pool=\"app\",worker=\"app:01\"} 5",
                "nanny_messages_relayed_total{pool=\"app\",worker=\"app:02\"} 0",
            ]
        );
    }

    #[test]
    fn only_balanced_listeners_count_connections_and_restarts_show_every_reason() {
        let restarts = Restarts::default();
        restarts.count("app", Reason::Signal);
        restarts.count("app", Reason::Signal);
        restarts.count("gone", Reason::Crash); // a pool no longer in the snapshot
        let text = scrape(&restarts);
        assert_eq!(
            lines_of(&text, "nanny_connections_balanced_total"),
            ["nanny_connections_balanced_total{listener=\"web\",pool=\"app\"} 9"]
        );
        let lines = lines_of(&text, "nanny_restarts_total");
        assert_eq!(lines.len(), Reason::ALL.len(), "{lines:?}");
        assert!(lines.contains(&"nanny_restarts_total{pool=\"app\",reason=\"signal\"} 2"));
        assert!(lines.contains(&"nanny_restarts_total{pool=\"app\",reason=\"crash\"} 0"));
    }

    #[test]
    fn the_shared_queue_has_samples_only_with_a_queue() {
        let text = scrape(&Restarts::default());
        assert!(lines_of(&text, "nanny_shared_queue").is_empty(), "{text}");
        let mut inspect = fixture();
        inspect.queue = Some(
            serde_json::from_value(serde_json::json!({
                "connected": true, "sent": 5, "reads": 4, "claims": 1, "completed": 4, "fenced": 2,
                "duplicate_completions": 0, "lost": 3, "remote_cancels": 0, "handed_back": 0,
                "late_replies": 6, "malformed": 0, "errors": 7,
                "claim_idle_max_ms": 1500, "claim_idle_total_ms": 2500, "under_pressure": false
            }))
            .expect("the stats parse"),
        );
        let text = render(Snapshot::new(inspect, &Restarts::default())).expect("encodes");
        assert_eq!(
            lines_of(&text, "nanny_shared_queue_connected"),
            ["nanny_shared_queue_connected 1.0"]
        );
        assert_eq!(
            lines_of(&text, "nanny_shared_queue_under_memory_pressure"),
            ["nanny_shared_queue_under_memory_pressure 0.0"]
        );
        assert_eq!(
            lines_of(&text, "nanny_shared_queue_reclaim_idle_seconds"),
            [
                "nanny_shared_queue_reclaim_idle_seconds{of=\"max\"} 1.5",
                "nanny_shared_queue_reclaim_idle_seconds{of=\"total\"} 2.5"
            ]
        );
        let ops = lines_of(&text, "nanny_shared_queue_operations_total");
        assert_eq!(ops.len(), 12, "{ops:?}");
        for line in [
            "nanny_shared_queue_operations_total{operation=\"sent\"} 5",
            "nanny_shared_queue_operations_total{operation=\"claimed\"} 1",
            "nanny_shared_queue_operations_total{operation=\"fenced\"} 2",
            "nanny_shared_queue_operations_total{operation=\"lost\"} 3",
            "nanny_shared_queue_operations_total{operation=\"late_reply\"} 6",
            "nanny_shared_queue_operations_total{operation=\"error\"} 7",
        ] {
            assert!(ops.contains(&line), "{line} in {ops:?}");
        }
    }
}
