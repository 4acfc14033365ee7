//! One scrape: the supervisor's snapshot (`inspect()`) and the restart
//! counts, written as OpenMetrics text by prometheus-client. Nothing is
//! kept between scrapes: the registry is built for each from the snapshot,
//! so the figures are the library's own and cannot drift from them.

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

const QUEUE_DEPTH: Family = Family("queue_depth", "Requests waiting in the pool's queue.", None, MetricType::Gauge);
const IN_FLIGHT: Family = Family("in_flight", "Requests sent to a worker and not answered yet.", None, MetricType::Gauge);
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

/// Every family a scrape has, in order.
#[cfg(test)]
pub(crate) const FAMILIES: [&str; 9] = [
    QUEUE_DEPTH.0,
    IN_FLIGHT.0,
    REQUESTS.0,
    LATENCY.0,
    RESTARTS.0,
    RSS.0,
    LAG.0,
    CONNECTIONS.0,
    MESSAGES.0,
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
        family(&mut encoder, &QUEUE_DEPTH, pools.iter().map(|p| (pool(p), Value::Gauge(p.stats.queued as f64))))?;
        family(&mut encoder, &IN_FLIGHT, pools.iter().map(|p| (pool(p), Value::Gauge(p.stats.in_flight as f64))))?;
        let outcomes = pools.iter().flat_map(|p| {
            let s = &p.stats;
            [
                ("answered", s.answered),
                ("failed", s.failed),
                ("cancelled", s.cancelled),
                ("rejected", s.rejected),
                ("refused", s.refused.saturating_sub(s.rejected)),
            ]
            .map(|(outcome, n)| (vec![("pool", p.name.clone()), ("outcome", outcome.to_owned())], Value::Counter(n)))
        });
        family(&mut encoder, &REQUESTS, outcomes)?;
        family(&mut encoder, &LATENCY, pools.iter().map(|p| (pool(p), Value::Histogram(p.stats.latency))))?;
        let restarts = self.restarts.iter().flat_map(|(name, counts)| {
            (Reason::ALL.iter().zip(counts))
                .map(|(r, n)| (vec![("pool", name.clone()), ("reason", r.label().to_owned())], Value::Counter(*n)))
        });
        family(&mut encoder, &RESTARTS, restarts)?;
        let workers = by_slot(&self.inspect.workers);
        family(&mut encoder, &RSS, workers.iter().map(|w| (worker(w), Value::Gauge(w.rss_bytes as f64))))?;
        let lags = (workers.iter())
            .filter_map(|w| w.heartbeat.as_ref().map(|h| (worker(w), Value::Gauge(h.lag_us as f64 / 1e6))));
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
        family(&mut encoder, &MESSAGES, messages)
    }
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
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), kind.clone())?;
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
