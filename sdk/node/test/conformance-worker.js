'use strict';
// The Node conformance worker (contract C of issue 15): the same behaviours
// as the Rust and Python ones, through nanny-worker's public API only.
// Run: node sdk/node/test/conformance-worker.js (as a pool's command).

const fs = require('node:fs');
const path = require('node:path');
const nanny = require('..');

const LANG = 'node';
if (!nanny.isWorker()) {
  // `node --test sdk/node/test/` runs every file here: outside nanny, nothing to do.
  console.log('conformance-worker.js: not started by nanny (no NANNY_FD); exiting');
  process.exit(0);
}
const worker = nanny.connect();
const dir = process.env.CONFORMANCE_DIR;
const mark = (suffix, text) => dir && fs.writeFileSync(path.join(dir, `${process.env.NANNY_WORKER_ID}.${suffix}`), text);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const ops = {
  echo: (req) => req.respond(req.data.data),
  sleep: async (req) => {
    await sleep(req.data.ms);
    req.respond('slept');
  },
  wait_cancel: (req) => {
    const tag = req.data.tag;
    req.cancelled.addEventListener('abort', () => worker.emit('cancelled', tag), { once: true });
  },
  fail: (req) => req.fail(req.data.kind, req.data.message),
  busy_for: (req) => {
    worker.busy();
    req.respond('busy');
    setTimeout(() => worker.ready(), req.data.ms);
  },
  block: (req) => {
    const until = Date.now() + req.data.ms;
    while (Date.now() < until) {
      // the event loop is blocked on purpose
    }
    req.respond('unblocked');
  },
  attachment: (req) => {
    const socket = req.socket;
    if (socket === null) return req.fail('attachment', 'no Tcp or Unix connection attached');
    socket.end(`conformance ${LANG}\n`, () => req.respond('written'));
  },
  whoami: (req) => req.respond({ pid: worker.pid, lang: LANG, in_flight: worker.requests().length }),
};

worker.on('request', (req) => {
  const op = req.data?.op;
  const handler = typeof op === 'string' && Object.hasOwn(ops, op) ? ops[op] : null;
  if (handler === null) return req.fail('unknown-op', String(op));
  return handler(req);
});

worker.on('broadcast', (event, _data, payload) => worker.emitRaw(`echo:${event}`, payload));
worker.onSoftKill(() => mark('soft', 'soft'));
worker.onHardKill(() => mark('hard', 'hard'));
worker.ready();
