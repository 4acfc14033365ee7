'use strict';
// A Node.js worker for the fd channel's Node flavour (tests/integration/
// node_channel.rs): plain `node`, no SDK, no dependency. It speaks the
// framed protocol itself with a hand-written MessagePack encoder and
// decoder for the few frames it needs, and takes descriptors with
// sdk/node/lib/node-channel.js. Requests are MessagePack strings:
//   "write"   (with a Tcp/Unix attachment): writes "node says hi\n" to it
//   "stream"  answers Ok("streamed") with a response stream "streamed bytes"
//   "garbage" writes a line that is not JSON on the fd channel
//   "handleless" sends a NODE_HANDLE line without a descriptor
//   anything else: Ok("pong")
// Balanced connections get "node serves <listener>\n".

const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { openNodeChannel, KIND } = require('../../sdk/node/lib/node-channel.js');

// ---- MessagePack, the subset the protocol uses ----
function encode(v) {
  const parts = [];
  const put = (x) => {
    if (x === null || x === undefined) parts.push(Buffer.from([0xc0]));
    else if (x === true || x === false) parts.push(Buffer.from([x ? 0xc3 : 0xc2]));
    else if (typeof x === 'number') {
      if (x < 128) parts.push(Buffer.from([x]));
      else if (x < 0x10000) parts.push(Buffer.from([0xcd, x >> 8, x & 0xff]));
      else if (x < 0x100000000) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(x, 1); parts.push(b); }
      else { const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(BigInt(x), 1); parts.push(b); }
    } else if (typeof x === 'string') {
      const s = Buffer.from(x, 'utf8');
      if (s.length < 32) parts.push(Buffer.from([0xa0 | s.length]));
      else parts.push(Buffer.from([0xd9, s.length]));
      parts.push(s);
    } else if (Buffer.isBuffer(x) || x instanceof Uint8Array) {
      parts.push(Buffer.from([0xc4, x.length]));
      parts.push(Buffer.from(x));
    } else if (Array.isArray(x)) {
      parts.push(Buffer.from([0x90 | x.length]));
      x.forEach(put);
    } else {
      const keys = Object.keys(x);
      parts.push(Buffer.from([0x80 | keys.length]));
      for (const k of keys) { put(k); put(x[k]); }
    }
  };
  put(v);
  return Buffer.concat(parts);
}

function decode(buf) {
  let at = 0;
  const take = (n) => { const s = buf.subarray(at, at + n); at += n; return s; };
  const map = (n) => { const o = {}; for (let i = 0; i < n; i++) { const k = one(); o[k] = one(); } return o; };
  const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(one()); return a; };
  const one = () => {
    const b = buf[at++];
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f);
    if ((b & 0xe0) === 0xa0) return take(b & 0x1f).toString('utf8');
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return take(take(1)[0]);
      case 0xc5: return take(take(2).readUInt16BE(0));
      case 0xc6: return take(take(4).readUInt32BE(0));
      case 0xcc: return take(1)[0];
      case 0xcd: return take(2).readUInt16BE(0);
      case 0xce: return take(4).readUInt32BE(0);
      case 0xcf: return Number(take(8).readBigUInt64BE(0));
      case 0xd9: return take(take(1)[0]).toString('utf8');
      case 0xda: return take(take(2).readUInt16BE(0)).toString('utf8');
      case 0xde: return map(take(2).readUInt16BE(0));
      case 0xdc: return arr(take(2).readUInt16BE(0));
      default: throw new Error(`msgpack byte 0x${b.toString(16)} not handled`);
    }
  };
  return one();
}

// ---- the framed socket ----
const link = new net.Socket({ fd: Number(process.env.NANNY_FD), readable: true, writable: true });
const send = (frame) => {
  const body = encode(frame);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  link.write(Buffer.concat([head, body]));
};
const ok = (id, attempt, text, stream) =>
  send({ Response: { id, attempt, outcome: { Ok: encode(text) }, ...(stream ? { stream: true } : {}) } });

const ch = openNodeChannel();
const capabilities = ch ? ['fd-channel', 'connections'] : [];
send({ Hello: { version: 4, pid: process.pid, agent: 'nanny-test-node', capabilities } });
send('Ready');
if (ch) send({ Listening: { on: true } });
const started = Date.now();
const beat = setInterval(() => {
  const uptime = Date.now() - started;
  send({ Heartbeat: { rss_bytes: process.memoryUsage().rss, in_flight: 0, lag_us: 0, uptime_ms: uptime, served: 0 } });
}, Number(process.env.NANNY_PULSE_MS || 1000));

let pending = Buffer.alloc(0);
link.on('data', (data) => {
  pending = Buffer.concat([pending, data]);
  while (pending.length >= 4) {
    const len = pending.readUInt32BE(0);
    if (pending.length < 4 + len) break;
    const frame = decode(pending.subarray(4, 4 + len));
    pending = pending.subarray(4 + len);
    onFrame(frame);
  }
});
link.on('end', () => process.exit(1));

function onFrame(frame) {
  if (frame === 'SoftKill' || frame === 'HardKill') {
    clearInterval(beat);
    if (ch) ch.close();
    link.end(() => process.exit(0));
  } else if (frame && frame.Request) {
    onRequest(frame.Request, null);
  }
}

function onRequest(req, handle) {
  const op = decode(req.payload);
  const { id, attempt } = req;
  if (op === 'write' && handle) {
    send({ Accepted: { id, attempt } });
    const sock = new net.Socket({ handle, readable: true, writable: true });
    sock.end('node says hi\n', () => ok(id, attempt, 'written'));
  } else if (op === 'stream') {
    respondStream(id, attempt);
  } else if (op === 'garbage') {
    fs.writeSync(process.channel.fd, 'this is not json\n');
  } else if (op === 'handleless') {
    process.send({ cmd: 'NODE_HANDLE', type: 'net.Native', msg: { nanny: 'AAAA' } });
  } else {
    ok(id, attempt, 'pong');
  }
}

// A connected pair of Unix stream sockets, made through a listener (plain
// Node has no socketpair). The accepted end must never have been read
// from (`pauseOnConnect`): bytes libuv read before the handle left would
// be lost to the supervisor.
let streams = 0;
function respondStream(id, attempt) {
  const where = path.join(os.tmpdir(), `nanny-node-${process.pid}-${++streams}.sock`);
  const server = net.createServer({ pauseOnConnect: true }, (theirs) => {
    server.close();
    fs.rmSync(where, { force: true });
    ch.sendStream({ id, attempt }, theirs).then(() => ok(id, attempt, 'streamed', true));
  });
  server.listen(where, () => {
    const ours = net.connect(where, () => {
      const text = Buffer.from('streamed bytes');
      const head = Buffer.alloc(4);
      head.writeUInt32BE(text.length, 0);
      ours.end(Buffer.concat([head, text, Buffer.alloc(4)]));
    });
  });
}

if (ch) {
  ch.on('descriptor', ({ id, attempt, kind, data, handle }) => {
    if (kind === KIND.ATTACHMENT) {
      onRequest(decode(Buffer.from(data)), handle);
    } else if (kind === KIND.CONNECTION) {
      const offer = decode(Buffer.from(data));
      send({ ConnectionTaken: { id: Buffer.from(id), attempt } });
      const sock = new net.Socket({ handle, readable: true, writable: true });
      sock.end(`node serves ${offer.listener}\n`);
      sock.on('close', () => send({ ConnectionClosed: { id: Buffer.from(id) } }));
    }
  });
}
