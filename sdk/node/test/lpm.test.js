'use strict';
// test/lpm-worker.js (an LPM worker.js on nanny-worker/lpm) as a real child
// process on a real socket: this test plays the supervisor's side of the
// protocol with the SDK's own codec (fd 3 is a Unix socketpair, NANNY_FD=3).

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { FrameReader, frame, pack, unpack } = require('../lib/codec');

/** The supervisor's end of one worker: `send(message)`, `next(tag)`, `exited`. */
class Peer {
  constructor(script) {
    this.child = spawn(process.execPath, [path.join(__dirname, script)], {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
      env: { ...process.env, NANNY_FD: '3', NANNY_WORKER_ID: '5', NANNY_POOL: 'lpm', NANNY_WORKER_NAME: 'lpm:01' },
    });
    this.link = this.child.stdio[3];
    this.reader = new FrameReader();
    this.inbox = [];
    this.waiting = null;
    this.link.on('data', (chunk) => {
      this.inbox.push(...this.reader.push(chunk));
      this.wake();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  send(message) {
    this.link.write(frame(message));
  }

  /** The next message tagged `tag` (heartbeats and others skipped). */
  next(tag) {
    return new Promise((resolve) => {
      this.waiting = { tag, resolve };
      this.wake();
    });
  }

  wake() {
    if (this.waiting === null) return;
    const { tag, resolve } = this.waiting;
    const tagOf = (m) => (typeof m === 'string' ? m : Object.keys(m)[0]);
    const i = this.inbox.findIndex((m) => tagOf(m) === tag);
    if (i < 0) return;
    const m = this.inbox.splice(0, i + 1)[i];
    this.waiting = null;
    resolve(typeof m === 'string' ? m : m[tag]);
  }
}

const HELLO = { Hello: { version: 4, min_version: 2, worker_id: 5, pulse_ms: 100, max_frame_len: 8 * 1024 * 1024 } };
const id = (n) => Buffer.alloc(16, n);
const request = (n, data, attachment) => ({
  Request: { id: id(n), attempt: 1, created_at_ms: Date.now(), payload: pack(data), ...(attachment ? { attachment } : {}) },
});
const okValue = (response) => unpack(response.outcome.Ok);

test('an LPM worker.js runs on nanny-worker/lpm', async () => {
  const peer = new Peer('lpm-worker.js');
  const hello = await peer.next('Hello');
  assert.equal(hello.version, 4);
  assert.ok(Number.isInteger(hello.pid));
  peer.send(HELLO);
  assert.equal(await peer.next('Ready'), 'Ready');

  peer.send(request(1, { hello: 'world' }));
  assert.deepEqual((await peer.next('Ack')).id, id(1));
  assert.deepEqual(okValue(await peer.next('Response')), { dummy: 'world', got: { hello: 'world' } });

  peer.send({ Broadcast: { event: 'ping', payload: pack('x') } });
  const pong = await peer.next('Emit');
  assert.deepEqual([pong.event, unpack(pong.payload)], ['pong', 'x']);

  peer.send(request(2, { hello: 'count' }));
  const counted = await peer.next('Emit');
  assert.deepEqual([counted.event, unpack(counted.payload)], ['counted', { ongoing: 1 }]);
  assert.deepEqual(okValue(await peer.next('Response')), { ongoing: 1 });

  peer.send(request(3, {}, 'Tcp'));
  const refused = await peer.next('Response');
  assert.equal(refused.outcome.Err.kind, 'attachment', 'no descriptors without the Node channel');

  const heartbeat = await peer.next('Heartbeat');
  assert.deepEqual(Object.keys(heartbeat.runtime_memory), ['heap_total', 'heap_used', 'external', 'array_buffers']);

  peer.send('SoftKill');
  const bye = await peer.next('Emit');
  assert.deepEqual([bye.event, unpack(bye.payload)], ['bye', 'soft']);
  assert.deepEqual(await peer.exited, { code: 0, signal: null });
});
