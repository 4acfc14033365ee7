// The Node peers on benches/peers' workloads, through their ordinary APIs:
//
//   node peers.js lpm|piscina [--round N]
//
// load-process-manager: `supervisor.enqueue(payload)` to 2 worker processes
// (cluster.fork under the hood), restarts on. piscina: `pool.run(payload)`
// on 2 worker threads; it has no processes, so its start and SIGKILL rows
// are printed as null ("–"). Payloads are strings of 100 B or 64 KiB; each
// worker answers [its id, the payload] and every answer's length is checked.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { SMALL, REPEATS, now, reporter, roundTrips, bursts, median } = require('./common');

function lpmSupervisor(count) {
  return require('load-process-manager').supervisor({
    worker: { file: path.join(__dirname, 'lpm-worker.js'), count, restarts: 1000 },
  });
}

const online = (sup) => new Promise((resolve) => sup.on('online', resolve));
const workerPids = () => Object.values(cluster.workers).map((w) => w.process.pid);

// Enqueues one payload; resolves to the pid that answered it.
const lpmAsk = (sup) => async (payload, size) => {
  const [pid, data] = (await sup.enqueue(payload)).data;
  if (data.length !== size) throw new Error(`answer of ${data.length} B, not ${size}`);
  return pid;
};

// Asks `width` at a time until pids outside `old` have answered, `want` of them.
async function untilAnswered(ask, old, want, width) {
  const seen = new Set();
  while (seen.size < want) {
    const pids = await Promise.all(Array.from({ length: width }, () => ask('x'.repeat(SMALL), SMALL)));
    pids.filter((p) => !old.has(p)).forEach((p) => seen.add(p));
  }
}

// SIGKILL one worker → its replacement answering, in ms.
async function lpmKill(ask) {
  const old = new Set(workerPids());
  const victim = [...old][0];
  const exited = new Promise((resolve) =>
    cluster.on('exit', (w) => w.process.pid === victim && resolve()),
  );
  const t = now();
  process.kill(victim, 'SIGKILL');
  await exited;
  await untilAnswered(ask, old, 1, 2);
  return now() - t;
}

// In a process of its own (a supervisor per process): start 4 → all answering.
async function lpmStart4() {
  const sup = lpmSupervisor(4);
  const t = now();
  const ready = online(sup);
  sup.start();
  await ready;
  await untilAnswered(lpmAsk(sup), new Set(), 4, 4);
  console.log(now() - t);
  sup.hardKill();
}

async function lpm(report) {
  const sup = lpmSupervisor(2);
  const ready = online(sup);
  sup.start();
  await ready;
  const ask = lpmAsk(sup);
  report.latencies(await roundTrips(ask));
  await bursts(report, ask, workerPids);
  const kills = [];
  for (let i = 0; i < REPEATS; i++) kills.push(await lpmKill(ask));
  report.emit('kill', median(kills), 'ms');
  const starts = [];
  for (let i = 0; i < REPEATS; i++) {
    starts.push(Number(execFileSync(process.execPath, [__filename, 'lpm-start4'], { encoding: 'utf8' })));
  }
  report.emit('start4', median(starts), 'ms');
  report.peakRss();
  sup.hardKill();
}

async function piscina(report) {
  const { Piscina } = require('piscina');
  const pool = new Piscina({ filename: path.join(__dirname, 'piscina-worker.js'), minThreads: 2, maxThreads: 2 });
  const ask = async (payload, size) => {
    const [thread, data] = await pool.run(payload);
    if (data.length !== size) throw new Error(`answer of ${data.length} B, not ${size}`);
    return thread;
  };
  report.latencies(await roundTrips(ask));
  await bursts(report, ask, () => []);
  report.none('kill');
  report.none('start4');
  report.peakRss();
  await pool.destroy();
}

async function main() {
  const [system, ...rest] = process.argv.slice(2);
  const at = rest.indexOf('--round');
  const report = reporter(at >= 0 ? Number(rest[at + 1]) : 0, system);
  if (system === 'lpm-start4') return lpmStart4();
  if (system === 'lpm') return lpm(report);
  if (system === 'piscina') return piscina(report);
  throw new Error(`no system ${system}; usage: node peers.js lpm|piscina [--round N]`);
}

main().then(
  // LPM's supervisor exits the process itself once its workers are gone; a
  // peer that left anything behind is not waited for.
  () => setTimeout(() => process.exit(0), 2000).unref(),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
