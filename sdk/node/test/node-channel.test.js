'use strict';
// The fd channel's Node flavour, JS side: a real child process with a real
// IPC channel; the parent plays the supervisor with Node's own
// `child.send(msg, handle)`, which writes the same NODE_HANDLE line
// (`net.Native` for a raw handle) that nanny writes.

const test = require('node:test');
const assert = require('node:assert');
const { fork } = require('node:child_process');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const fs = require('node:fs');

const lib = require('../lib/node-channel.js');

const MODULE = path.join(__dirname, '..', 'lib', 'node-channel.js');

// The child: echoes each descriptor's tag into the socket it came with,
// answers data `stream` with a response stream (`node -e`: argv[1] is the
// mode, argv[2] a scratch directory).
const CHILD = `
const net = require('node:net');
const path = require('node:path');
const { openNodeChannel } = require(${JSON.stringify(MODULE)});
const ch = openNodeChannel();
// 'idle': opened and nothing else; the process must exit by itself.
if (process.argv[1] === 'serve') {
  ch.ref(); // a worker's own socket would keep it alive
  ch.on('descriptor', ({ id, attempt, kind, data, handle }) => {
    const sock = new net.Socket({ handle, readable: true, writable: true });
    sock.end(\`\${Buffer.from(id).toString('hex')} \${attempt} \${kind} \${Buffer.from(data)}\\n\`);
    if (Buffer.from(data).toString() !== 'stream') return;
    const where = path.join(process.argv[2], 'stream.sock');
    const server = net.createServer({ pauseOnConnect: true }, (theirs) => {
      ch.sendStream({ id, attempt }, theirs).then(() => server.close());
    });
    server.listen(where, () => {
      const ours = net.connect(where, () => ours.end('streamed\\n'));
    });
  });
  ch.on('error', (err) => process.send({ error: err.message }));
  process.send({ ready: true });
}
`;

function start(mode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-channel-'));
  const child = fork('-e', [CHILD, mode, dir], {
    execArgv: [],
    serialization: 'json',
    env: { ...process.env, NANNY_NODE_CHANNEL: '1' },
  });
  const done = () => {
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { child, done };
}

function once(emitter, event, pred = () => true) {
  return new Promise((resolve) => {
    const on = (...args) => {
      if (pred(...args)) {
        emitter.removeListener(event, on);
        resolve(args);
      }
    };
    emitter.on(event, on);
  });
}

/** A connected TCP pair: our client, and the server side to hand over. */
async function connectedPair() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'connection');
  const client = net.connect(server.address().port, '127.0.0.1');
  const [theirs] = await accepted;
  server.close();
  return { client, theirs };
}

function readAll(sock) {
  return new Promise((resolve, reject) => {
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => (text += d));
    sock.on('end', () => resolve(text));
    sock.on('error', reject);
  });
}

test('tags encode and decode', () => {
  const id = new Uint8Array(16).fill(7);
  const tag = lib.encodeTag({ id, attempt: 3 }, lib.KIND.RESPONSE_STREAM);
  // The same bytes as the Rust side's test and PROTOCOL.md section 11.6.
  assert.strictEqual(tag.toString('base64'), 'BwcHBwcHBwcHBwcHBwcHBwAAAAMC');
  const m = lib.decodeMessage(Buffer.concat([tag, Buffer.from('x')]));
  assert.deepStrictEqual([m.attempt, m.kind, Buffer.from(m.data).toString()], [3, 2, 'x']);
  assert.deepStrictEqual(m.id, id);
  assert.strictEqual(lib.decodeMessage(Buffer.alloc(20)), null);
  assert.throws(() => lib.encodeTag({ id: new Uint8Array(3), attempt: 1 }, 2), TypeError);
});

test('without NANNY_NODE_CHANNEL there is no channel', () => {
  const saved = process.env.NANNY_NODE_CHANNEL;
  delete process.env.NANNY_NODE_CHANNEL;
  try {
    assert.strictEqual(lib.openNodeChannel(), null);
  } finally {
    if (saved !== undefined) process.env.NANNY_NODE_CHANNEL = saved;
  }
});

test('a descriptor arrives as a working socket, and a response stream goes back', async () => {
  const { child, done } = start('serve');
  await once(child, 'message', (m) => m && m.ready);
  const { client, theirs } = await connectedPair();
  const id = Buffer.alloc(16, 0xab);
  const tag = lib.encodeTag({ id, attempt: 2 }, lib.KIND.ATTACHMENT);
  const nanny = Buffer.concat([tag, Buffer.from('stream')]).toString('base64');
  const streamed = once(child, 'message', (m, h) => m && m.nanny && h);
  // A raw handle: Node writes type "net.Native", as nanny does.
  child.send({ nanny }, theirs._handle);
  assert.strictEqual(await readAll(client), `${id.toString('hex')} 2 1 stream\n`);
  const [msg, socket] = await streamed;
  const back = lib.decodeMessage(Buffer.from(msg.nanny, 'base64'));
  assert.deepStrictEqual(
    [Buffer.from(back.id).toString('hex'), back.attempt, back.kind, back.data.length],
    [id.toString('hex'), 2, lib.KIND.RESPONSE_STREAM, 0]
  );
  assert.strictEqual(await readAll(socket), 'streamed\n');
  done();
});

test('a malformed message is an error event, and its handle is closed', async () => {
  const { child, done } = start('serve');
  await once(child, 'message', (m) => m && m.ready);
  const { client, theirs } = await connectedPair();
  const error = once(child, 'message', (m) => m && m.error);
  child.send({ nanny: Buffer.alloc(5).toString('base64') }, theirs._handle);
  const [m] = await error;
  assert.match(m.error, /shorter than a tag/);
  theirs.destroy(); // our own copy
  assert.strictEqual(await readAll(client), '', 'closed by the child too');
  done();
});

test('the channel does not keep the process alive', async () => {
  const { child, done } = start('idle');
  const [code] = await once(child, 'exit');
  assert.strictEqual(code, 0);
  done();
});
