'use strict';
// The SDK's own cost per request, without the kernel: a Worker on a FIFO
// (nothing arrives on it) is fed chunks of Request frames as the supervisor
// sends them, and its socket's writes are counted instead of written. Prints
// the CPU microseconds per request (user + system of this process).
//
//   node sdk/node/bench/hot.js [lpm] [--requests N] [--batch B] [--bytes P]

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { frame } = require('../lib/codec');

const args = process.argv.slice(2);
const opt = (name, d) => {
  const i = args.indexOf(name);
  return i < 0 ? d : Number(args[i + 1]);
};
const lpm = args.includes('lpm');
const total = opt('--requests', 400_000);
const batch = opt('--batch', 64);
const bytes = opt('--bytes', 100);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nanny-hot-'));
const fifo = path.join(dir, 'link');
execFileSync('mkfifo', [fifo]);
const fd = fs.openSync(fifo, fs.constants.O_RDWR);
const env = { NANNY_FD: String(fd), NANNY_WORKER_ID: '1', NANNY_POOL: 'bench', NANNY_WORKER_NAME: 'bench-1' };

let worker;
if (lpm) {
  process.env.NANNY_FD = env.NANNY_FD;
  process.env.NANNY_WORKER_ID = '1';
  const w = require('../lpm').worker;
  w.on('request', (req) => req.respond([process.pid, req.data]));
  w.ready();
  worker = require('..').connect();
} else {
  const { Worker } = require('../lib/worker');
  worker = new Worker({ env });
  worker.on('request', (req) => req.respond(req.data));
  worker.ready();
}

let answered = 0;
let written = 0;
worker.link.socket.write = (chunk, cb) => {
  written += chunk.length;
  answered += countFrames(chunk);
  if (cb) process.nextTick(cb);
  return true;
};

/** Frames in a chunk of whole frames. */
function countFrames(chunk) {
  let n = 0;
  for (let at = 0; at < chunk.length; at += 4 + chunk.readUInt32BE(at)) n += 1;
  return n;
}

const payload = frame(new Uint8Array(bytes)).subarray(4); // msgpack bin of `bytes` zeros
const requestFrame = (i) => {
  const id = new Uint8Array(16);
  new DataView(id.buffer).setUint32(12, i);
  return frame({ Request: { id, attempt: 1, created_at_ms: 1_700_000_000_000, payload } });
};
const chunks = [];
for (let b = 0; b < 16; b += 1) {
  const frames = [];
  for (let i = 0; i < batch; i += 1) frames.push(requestFrame(b * batch + i));
  chunks.push(Buffer.concat(frames));
}

async function main() {
  worker.link.onData(frame({ Hello: { version: 4, worker_id: 1, pulse_ms: 60_000, max_frame_len: 8 << 20 } }));
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const run = async (n) => {
    const goal = answered + n;
    for (let i = 0; answered < goal; i += 1) {
      if (i * batch < n) worker.link.onData(chunks[i % chunks.length]);
      await turn();
    }
  };
  await run(50_000); // warm up the JIT
  const before = process.cpuUsage();
  const start = answered;
  await run(total);
  const used = process.cpuUsage(before);
  const n = answered - start;
  const us = (used.user + used.system) / n;
  console.log(JSON.stringify({ system: lpm ? 'lpm-layer' : 'sdk', requests: n, batch, bytes, cpu_us_per_request: Number(us.toFixed(3)) }));
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

main();
