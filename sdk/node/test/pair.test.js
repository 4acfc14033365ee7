'use strict';
// lib/pair.js's socketPair: connected both ways, matched right when several
// are made at once, and a `far` end nothing in this process reads from, so
// that another process given it gets every byte `near` wrote, even those
// written before the handoff.

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');

const { socketPair } = require('../lib/pair.js');

/** Everything `socket` gives until its end. */
function readAll(socket) {
  return new Promise((resolve, reject) => {
    const parts = [];
    socket.on('data', (chunk) => parts.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(parts)));
    socket.once('error', reject);
    socket.resume(); // far is paused
  });
}

/** Resolves after `n` turns of the event loop (libuv polls for I/O in each). */
async function turns(n) {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

test('near and far are connected both ways', async () => {
  const [near, far] = await socketPair();
  const toFar = readAll(far);
  const toNear = readAll(near);
  near.end('from near');
  far.end('from far');
  assert.strictEqual((await toFar).toString(), 'from near');
  assert.strictEqual((await toNear).toString(), 'from far');
});

test('pairs made at once are matched to their own connects', async () => {
  const pairs = await Promise.all(Array.from({ length: 8 }, () => socketPair()));
  const got = pairs.map(([, far]) => readAll(far));
  pairs.forEach(([near], i) => near.end(`pair ${i}`));
  assert.deepStrictEqual(
    (await Promise.all(got)).map((b) => b.toString()),
    pairs.map((_, i) => `pair ${i}`),
  );
});

test('far is never read from in this process', async () => {
  const [near, far] = await socketPair();
  await new Promise((resolve) => near.write(Buffer.alloc(4096, 7), resolve));
  await turns(20);
  assert.strictEqual(far.bytesRead, 0);
  assert.strictEqual(far.readableLength, 0);
  const got = readAll(far);
  near.end();
  assert.deepStrictEqual(await got, Buffer.alloc(4096, 7));
});

// The child reads the socket it is sent to its end and answers its length
// and SHA-256.
const CHILD = `
process.on('message', (msg, socket) => {
  const hash = require('node:crypto').createHash('sha256');
  let n = 0;
  socket.on('data', (chunk) => { n += chunk.length; hash.update(chunk); });
  socket.on('end', () => process.send({ n, sha: hash.digest('hex') }, () => process.disconnect()));
});
`;

test('a process handed far reads every byte near wrote, before and after the handoff', async () => {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const answer = new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) without an answer`)));
  });
  const [near, far] = await socketPair();
  const before = crypto.randomBytes(100_000);
  const after = crypto.randomBytes(1_000_000);
  near.write(before);
  await turns(5);
  await new Promise((resolve, reject) => child.send('socket', far, (e) => (e ? reject(e) : resolve())));
  near.end(after);
  const { n, sha } = await answer;
  const all = Buffer.concat([before, after]);
  assert.strictEqual(n, all.length);
  assert.strictEqual(sha, crypto.createHash('sha256').update(all).digest('hex'));
});
