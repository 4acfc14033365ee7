'use strict';
// A Node SDK worker for the descriptor tests (tests/integration/node_sdk.rs):
// attachments, request and response streams, balanced connections and
// broadcast sockets, through nanny-worker's public API only. Requests are
// MessagePack maps `{op, ...}`:
//   caps                the hello's capabilities
//   write {text}        writes `text` to req.socket and ends it
//   echo                reads a line from req.socket, writes `node read: <line>` back, ends it
//   flood {n}           answers at once, then writes n bytes of `byteAt` to req.socket
//   read                reads req.stream to its end; answers {bytes}
//   buffer {n}          respondStream('buffer', a Buffer of n bytes)
//   readable {n}        respondStream('readable', a Readable of n bytes in pieces)
//   writable {n}        respondStream('writable') and writes n bytes to the Writable
//   ignore              answers without taking the attachment
//   throw               throws without taking the attachment
//   sleep {ms}          answers its pid after ms
// With FD_WORKER_INCOMING=1 it serves worker.incoming(): `node <id> serves
// <listener> <kind>\n`. A broadcast `serve` with a listening TCP socket makes
// it accept there too (`node <id> accepts\n`) and emit `serving`.

const net = require('node:net');
const { Readable } = require('node:stream');
const nanny = require('..');

if (!nanny.isWorker()) {
  // `node --test sdk/node/test/` runs every file here: outside nanny, nothing to do.
  console.log('fd-worker.js: not started by nanny (no NANNY_FD); exiting');
  process.exit(0);
}
const worker = nanny.connect();

/** Byte `i` of the generated streams (the tests compute the same). */
const byteAt = (i) => i % 251;

/** `n` bytes of `byteAt` from offset `from`. */
function bytes(n, from = 0) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = byteAt(from + i);
  return b;
}

/** Everything `readable` gives until its end (it stays open: a socket can still be written). */
function readAll(readable) {
  return new Promise((resolve, reject) => {
    const parts = [];
    readable.on('data', (chunk) => parts.push(chunk));
    readable.once('end', () => resolve(Buffer.concat(parts)));
    readable.once('error', reject);
  });
}

/** The first line `socket` gives, with its newline. */
function readLine(socket) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf(10);
      if (end < 0) return;
      socket.removeListener('data', onData);
      socket.pause();
      resolve(got.subarray(0, end + 1).toString());
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** `n` bytes as a Readable of uneven pieces (1000 bytes, then 70 000, ...). */
function pieces(n) {
  return Readable.from(
    (function* () {
      for (let at = 0, i = 0; at < n; i++) {
        const len = Math.min(n - at, i % 2 === 0 ? 1000 : 70000);
        yield bytes(len, at);
        at += len;
      }
    })(),
  );
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const ops = {
  caps: (req) => req.respond(worker.capabilities),
  write: (req, { text }) => {
    const socket = req.socket;
    socket.end(text, () => req.respond({ kind: req.attachmentKind, written: Buffer.byteLength(text) }));
  },
  echo: async (req) => {
    const socket = req.socket;
    const line = await readLine(socket);
    await new Promise((resolve) => socket.end(`node read: ${line}`, resolve));
    return { kind: req.attachmentKind, read: line.length };
  },
  flood: (req, { n }) => {
    const socket = req.socket;
    req.respond({ kind: req.attachmentKind, flooding: n });
    socket.end(bytes(n));
  },
  read: async (req) => ({ bytes: await readAll(req.stream) }),
  buffer: (req, { n }) => req.respondStream('buffer', bytes(n)),
  readable: (req, { n }) => req.respondStream('readable', pieces(n)),
  writable: async (req, { n }) => {
    const out = await req.respondStream('writable');
    for (let at = 0; at < n; at += 50000) {
      if (!out.write(bytes(Math.min(50000, n - at), at))) await new Promise((resolve) => out.once('drain', resolve));
    }
    out.end();
  },
  ignore: () => 'ignored',
  throw: () => {
    throw new Error('thrown before taking the attachment');
  },
  sleep: async (req, { ms }) => {
    await sleep(ms);
    return worker.pid;
  },
};

worker.on('request', (req) => {
  const data = req.data ?? {};
  const op = Object.hasOwn(ops, data.op) ? ops[data.op] : null;
  if (op === null) return req.fail('unknown-op', String(data.op));
  return op(req, data);
});

async function serveIncoming() {
  for await (const socket of worker.incoming()) {
    socket.end(`node ${worker.id} serves ${socket.nannyListener} ${socket.nannyKind}\n`);
  }
}

worker.on('serve', (_data, _payload, handle) => {
  const server = net.createServer((socket) => socket.end(`node ${worker.id} accepts\n`));
  server.listen(handle, () => worker.emit('serving', worker.id));
});

if (process.env.FD_WORKER_INCOMING === '1') serveIncoming();
worker.ready();
