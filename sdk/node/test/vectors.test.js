'use strict';
// The protocol's test vectors (worker-sdk/vectors/frames.json, generated from
// the Rust types): every frame the supervisor sends decodes through the SDK's
// reader and checker; every frame a worker sends is rebuilt with the SDK's
// builders and encoder, byte for byte.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FrameReader, ProtocolError, frame } = require('../lib/codec');
const { build, parseToWorker } = require('../lib/messages');

const file = path.join(__dirname, '../../../worker-sdk/vectors/frames.json');
const { vectors } = JSON.parse(fs.readFileSync(file, 'utf8'));
const byName = new Map(vectors.map((v) => [v.name, v]));

/** The JSON form of a value back into what the SDK's reader yields (bin: a Buffer). */
function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.$bin === 'string') {
      return Buffer.from(value.$bin, 'hex');
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

/** Decodes one whole frame with the SDK's reader; the message, or a throw. */
function readOne(hex) {
  const messages = new FrameReader().push(Buffer.from(hex, 'hex'));
  assert.equal(messages.length, 1, 'one whole frame');
  return messages[0];
}

const pair = (f) => (b) => f(b.id, b.attempt);
/** A worker's message rebuilt with the SDK's builders from its decoded form. */
const rebuilders = {
  Hello: (b) => build.hello(b.version, b.pid, b.agent, b.capabilities ?? []),
  Ready: () => build.ready(),
  Busy: () => build.busy(),
  Response: (b) => {
    const [tag, body] = Object.entries(b.outcome)[0];
    const out = tag === 'Ok' ? build.ok(body) : build.err(body.kind, body.message);
    return build.response(b.id, b.attempt, out, b.stream === true);
  },
  Accepted: pair(build.accepted),
  Ack: pair(build.ack),
  Emit: (b) => build.emit(b.event, b.payload),
  Heartbeat: (b) => build.heartbeat(b),
  Listening: (b) => build.listening(b.on),
  ConnectionTaken: pair(build.connectionTaken),
  ConnectionBounced: pair(build.connectionBounced),
  ConnectionClosed: (b) => build.connectionClosed(b.id),
  Publish: (b) => build.publish(b.to, b.data),
  Query: (b) => build.query(b.id, b.query),
  Confirmed: (b) => build.confirmed(b.identifier),
  Ask: (b) => build.ask(b.id, b.question),
  Closing: (b) => build.closing(b.code),
};

/** The frame the SDK sends for a decoded worker message; throws for an unknown one. */
function rebuild(message) {
  const [tag, body] = typeof message === 'string' ? [message, null] : Object.entries(message)[0] ?? [];
  if (!Object.hasOwn(rebuilders, tag)) throw new ProtocolError(`not a known message (${tag})`);
  return frame(rebuilders[tag](body));
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');

test('the file has both directions, canonical, same_as and invalid vectors', () => {
  assert.deepEqual(new Set(vectors.map((v) => v.direction)), new Set(['to_worker', 'from_worker']));
  for (const key of ['canonical', 'same_as', 'invalid']) assert.ok(vectors.some((v) => v[key]), key);
});

test('canonical vectors: the SDK encoder gives exactly the frame', () => {
  for (const v of vectors.filter((x) => x.canonical)) {
    assert.equal(hex(frame(fromJson(v.value))), v.frame, v.name);
  }
});

test('valid vectors decode to their value', () => {
  for (const v of vectors.filter((x) => !x.invalid)) {
    assert.deepEqual(readOne(v.frame), fromJson(v.value), v.name);
  }
});

test('supervisor frames pass the checker; same_as ones mean the same message', () => {
  for (const v of vectors.filter((x) => x.direction === 'to_worker' && !x.invalid)) {
    const meaning = parseToWorker(readOne(v.frame));
    const canonical = v.same_as ? parseToWorker(readOne(byName.get(v.same_as).frame)) : meaning;
    assert.deepEqual(meaning, canonical, v.name);
  }
});

test('worker frames rebuilt with the SDK builders are the canonical frame', () => {
  for (const v of vectors.filter((x) => x.direction === 'from_worker' && !x.invalid)) {
    const canonical = v.same_as ? byName.get(v.same_as) : v;
    assert.equal(hex(rebuild(readOne(v.frame))), canonical.frame, v.name);
  }
});

test('invalid vectors are protocol errors', () => {
  for (const v of vectors.filter((x) => x.invalid)) {
    const check = v.direction === 'to_worker' ? parseToWorker : rebuild;
    assert.throws(() => check(readOne(v.frame)), ProtocolError, `${v.name}: ${v.invalid}`);
  }
});

test('the SDK heartbeat has the vector heartbeat key order', () => {
  const { Pulse } = require('../lib/heartbeat');
  const sent = [];
  const pulse = new Pulse(1000, (m) => sent.push(m), () => ({ inFlight: 0, served: 0 }));
  pulse.beat(0n);
  const ours = Object.keys(sent[0].Heartbeat);
  const theirs = Object.keys(byName.get('heartbeat with runtime memory').value.Heartbeat);
  assert.deepEqual(ours, theirs);
  assert.deepEqual(Object.keys(sent[0].Heartbeat.runtime_memory), ['heap_total', 'heap_used', 'external', 'array_buffers']);
});
