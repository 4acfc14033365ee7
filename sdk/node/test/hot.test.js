'use strict';
// The hand-made hot frames (lib/hot.js) against the generic codec: the same
// messages from the same bytes, the same bytes from the same answers, over
// the vectors and every integer and bin width; and the frame reader over
// frames split at every byte.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FrameReader, decodeBody, frame, pack } = require('../lib/codec');
const { build, parseToWorker } = require('../lib/messages');
const { binHeadLen, decodeRequest, responseOkLen, writeBinHead, writeResponseOkHead } = require('../lib/hot');

const file = path.join(__dirname, '../../../worker-sdk/vectors/frames.json');
const { vectors } = JSON.parse(fs.readFileSync(file, 'utf8'));
const vector = (name) => Buffer.from(vectors.find((v) => v.name === name).frame, 'hex');

const ATTEMPTS = [1, 127, 128, 255, 256, 65_535, 65_536, 0xffff_ffff];
const TIMES = [0, 1, 0xffff_ffff, 0x1_0000_0000, 1_764_720_000_123, Number.MAX_SAFE_INTEGER];
const LENGTHS = [0, 1, 253, 254, 255, 256, 65_532, 65_535, 65_536, 70_000];

const idOf = (n) => {
  const id = Buffer.alloc(16, 0xa5);
  id.writeUInt32BE(n, 12);
  return id;
};
const body = (whole) => whole.subarray(4);
const generic = (b) => parseToWorker(decodeBody(b));
const same = (hot, slow) => {
  assert.notEqual(hot, null);
  assert.deepEqual({ ...hot, id: [...hot.id], payload: [...hot.payload] }, { ...slow, id: [...slow.id], payload: [...slow.payload] });
};

test('the request vector decodes by hand as the generic way does', () => {
  const b = body(vector('request'));
  same(decodeRequest(b, 0, b.length), generic(b));
});

test('a request with an attachment, or anything not a request, is left to the generic way', () => {
  for (const v of vectors.filter((x) => x.direction === 'to_worker' && x.name !== 'request')) {
    const b = Buffer.from(v.frame, 'hex').subarray(4);
    assert.equal(decodeRequest(b, 0, b.length), null, v.name);
  }
});

test('requests of every integer and bin width decode by hand as the generic way does', () => {
  for (const attempt of ATTEMPTS) {
    for (const created_at_ms of TIMES) {
      for (const len of LENGTHS) {
        const b = body(frame({ Request: { id: idOf(len), attempt, created_at_ms, payload: Buffer.alloc(len, 7) } }));
        same(decodeRequest(b, 0, b.length), generic(b));
      }
    }
  }
});

test('a truncated or extended request is never decoded by hand', () => {
  const b = body(vector('request'));
  for (let end = 0; end < b.length; end += 1) assert.equal(decodeRequest(b, 0, end), null, `cut at ${end}`);
  const longer = Buffer.concat([b, Buffer.from([0xc0])]);
  assert.equal(decodeRequest(longer, 0, longer.length), null);
});

/** The body `Link.sendOk` writes, made with the hot writers alone. */
function hotResponse(id, attempt, bytes, asBin) {
  const payloadLen = asBin ? binHeadLen(bytes.length) + bytes.length : bytes.length;
  const out = Buffer.alloc(responseOkLen(attempt, payloadLen));
  let at = writeResponseOkHead(out, 0, id, attempt, payloadLen);
  if (asBin) at = writeBinHead(out, at, bytes.length);
  out.set(bytes, at);
  assert.equal(at + bytes.length, out.length);
  return out;
}

test('the ok response vector is written by hand byte for byte', () => {
  const v = vectors.find((x) => x.name === 'response: ok');
  const want = Buffer.from(v.frame, 'hex').subarray(4);
  const id = Buffer.from(v.value.Response.id.$bin, 'hex');
  const payload = Buffer.from(v.value.Response.outcome.Ok.$bin, 'hex');
  assert.deepEqual(hotResponse(id, 1, payload, false), want);
});

test('ok responses of every width are written as the generic encoder writes them', () => {
  for (const attempt of ATTEMPTS) {
    for (const len of LENGTHS) {
      const id = idOf(attempt);
      const value = Buffer.alloc(len, 3);
      const raw = pack([len, 'x']);
      assert.deepEqual(hotResponse(id, attempt, value, true), body(frame(build.response(id, attempt, build.ok(pack(value))))));
      assert.deepEqual(hotResponse(id, attempt, raw, false), body(frame(build.response(id, attempt, build.ok(raw)))));
    }
  }
});

test('frames split at every byte arrive whole and in order', () => {
  const names = ['request', 'request with a tcp attachment', 'cancel', 'broadcast'].filter((n) => vectors.some((v) => v.name === n));
  const stream = Buffer.concat(names.map(vector));
  const want = new FrameReader().push(stream);
  assert.equal(want.length, names.length);
  for (let cut = 1; cut < stream.length; cut += 1) {
    for (const step of [cut, 1]) {
      const reader = new FrameReader();
      const got = [];
      for (let at = 0, end = cut; at < stream.length; at = end, end = Math.min(stream.length, end + step)) {
        got.push(...reader.push(stream.subarray(at, end)));
      }
      assert.deepEqual(got, want, `first chunk ${cut}, then ${step}`);
      assert.equal(reader.pending(), 0);
    }
  }
});

test('a frame longer than the limit is refused from its prefix alone', () => {
  const reader = new FrameReader(16);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(17);
  assert.throws(() => reader.push(prefix), /longer than max_frame_len 16/);
});

test('a bin payload is read by hand as the generic decoder reads it, from a Buffer or a Uint8Array', () => {
  const { binContent } = require('../lib/hot');
  const { unpack } = require('../lib/codec');
  for (const len of LENGTHS) {
    const packed = pack(Buffer.alloc(len, 9));
    for (const payload of [Buffer.from(packed), new Uint8Array(packed)]) {
      const got = binContent(payload);
      assert.equal(Object.getPrototypeOf(got), Object.getPrototypeOf(payload));
      assert.deepEqual(got, unpack(payload));
    }
  }
  for (const other of [pack('text'), pack([1, 2]), pack(null), Buffer.concat([pack(Buffer.alloc(3)), Buffer.from([0])])]) {
    assert.equal(binContent(other), undefined);
  }
});
