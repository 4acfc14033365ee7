// What the Node peers share with the Rust side: the workloads' sizes and
// timings, and one JSON line per (system, workload) result.
'use strict';
const fs = require('node:fs');

const SMALL = 100;
const LARGE = 64 * 1024;
const OUTSTANDING = 256;
const RUN_FOR_MS = 1500;
const WARM_UP = 500;
const REPEATS = 3;

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function reporter(round, system) {
  const emit = (workload, value, unit) =>
    console.log(JSON.stringify({ round, system, workload, value: Number(value.toFixed(4)), unit }));
  return {
    emit,
    // '–' cells: a row that does not apply to this peer (no processes).
    none: (workload) => console.log(JSON.stringify({ round, system, workload, value: null, unit: '' })),
    latencies(each) {
      each.sort((a, b) => a - b);
      const at = (q) => each[Math.round((each.length - 1) * q)] * 1000;
      emit('rtt_p50', at(0.5), 'us');
      emit('rtt_p99', at(0.99), 'us');
    },
    peakRss() {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
      emit('rss', Number(hwm) / 1024, 'MiB');
    },
  };
}

// CPU seconds so far of this process (all threads) and of `pids`.
function cpuSeconds(pids) {
  const ticks = 100;
  const one = (pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[14 - 3]) + Number(f[15 - 3])) / ticks;
    } catch {
      return 0;
    }
  };
  return one('self') + pids.reduce((s, p) => s + one(p), 0);
}

// One request at a time for RUN_FOR_MS after WARM_UP; each round trip in ms.
async function roundTrips(ask) {
  const payload = 'x'.repeat(SMALL);
  for (let i = 0; i < WARM_UP; i++) await ask(payload, SMALL);
  const each = [];
  const start = now();
  while (now() - start < RUN_FOR_MS) {
    const t = now();
    await ask(payload, SMALL);
    each.push(now() - t);
  }
  return each;
}

// OUTSTANDING requests in flight until runFor has passed, then until the
// last answer. `ask` resolves to the id of the worker that answered.
async function burst(ask, size, runFor) {
  const payload = 'x'.repeat(size);
  const perWorker = new Map();
  const start = now();
  const lane = async () => {
    while (now() - start < runFor) {
      const w = await ask(payload, size);
      perWorker.set(w, (perWorker.get(w) || 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: OUTSTANDING }, lane));
  const counts = [...perWorker.values()];
  const total = counts.reduce((a, b) => a + b, 0);
  return { total, seconds: (now() - start) / 1000, share: (100 * Math.max(...counts)) / total };
}

// The burst rows: 100 B (req/s, busiest share, CPU per 100 k) and 64 KiB (MiB/s).
async function bursts(report, ask, pids) {
  await burst(ask, SMALL, RUN_FOR_MS / 5);
  const cpu = cpuSeconds(pids());
  const small = await burst(ask, SMALL, RUN_FOR_MS);
  const used = cpuSeconds(pids()) - cpu;
  report.emit('rps_100B', small.total / small.seconds, 'req/s');
  report.emit('share_100B', small.share, '%');
  report.emit('cpu_per_100k', (used * 100000) / small.total, 's');
  const large = await burst(ask, LARGE, RUN_FOR_MS);
  report.emit('mibs_64KiB', (large.total * LARGE) / large.seconds / (1024 * 1024), 'MiB/s');
}

function median(v) {
  v.sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

module.exports = { SMALL, REPEATS, now, reporter, roundTrips, bursts, median };
