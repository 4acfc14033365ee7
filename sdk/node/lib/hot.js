'use strict';
// The two hot frames by hand. A `Request` without attachment is decoded, and
// a `Response` with an `Ok` outcome encoded, byte for byte as the MessagePack
// library would (test/hot.test.js holds the two to the vectors and to each
// other), so that the common case never builds the nested objects the
// library needs or walks the frame for its depth. Any frame of another shape
// (an attachment, fields in another order) returns null here and goes the
// generic way: this is a shortcut, never a second grammar.

const REQUEST_HEAD = Buffer.from([
  0x81, 0xa7, ...Buffer.from('Request'), 0x84, 0xa2, ...Buffer.from('id'), 0xc4, 0x10,
]);
const ATTEMPT_KEY = Buffer.from([0xa7, ...Buffer.from('attempt')]);
const CREATED_KEY = Buffer.from([0xad, ...Buffer.from('created_at_ms')]);
const PAYLOAD_KEY = Buffer.from([0xa7, ...Buffer.from('payload')]);

const RESPONSE_HEAD = Buffer.from([
  0x81, 0xa8, ...Buffer.from('Response'), 0x83, 0xa2, ...Buffer.from('id'), 0xc4, 0x10,
]);
const OUTCOME_OK = Buffer.from([0xa7, ...Buffer.from('outcome'), 0x81, 0xa2, ...Buffer.from('Ok')]);

/** True if `buf[at..]` starts with `bytes`. */
function startsWith(buf, at, end, bytes) {
  if (end - at < bytes.length) return false;
  for (let i = 0; i < bytes.length; i += 1) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

/**
 * Reads a MessagePack unsigned integer at `at`; returns its end offset and
 * leaves the value in `cursor.value`, or -1 if there is none (a negative or
 * too large one too: those are for the generic decoder to refuse).
 */
function readUint(buf, at, end, cursor) {
  if (at >= end) return -1;
  const tag = buf[at];
  if (tag <= 0x7f) {
    cursor.value = tag;
    return at + 1;
  }
  const width = tag === 0xcc ? 1 : tag === 0xcd ? 2 : tag === 0xce ? 4 : tag === 0xcf ? 8 : 0;
  if (width === 0 || at + 1 + width > end) return -1;
  if (width === 8) {
    const hi = buf.readUInt32BE(at + 1);
    if (hi > 0x1f_ffff) return -1; // beyond 2^53: not a safe integer
    cursor.value = hi * 0x1_0000_0000 + buf.readUInt32BE(at + 5);
  } else {
    cursor.value = buf.readUIntBE(at + 1, width);
  }
  return at + 1 + width;
}

/**
 * Reads a MessagePack bin's header at `at` (of a Buffer or a plain
 * Uint8Array); its length in `cursor.value`, or -1.
 */
function readBinHead(buf, at, end, cursor) {
  if (at >= end) return -1;
  const tag = buf[at];
  const width = tag === 0xc4 ? 1 : tag === 0xc5 ? 2 : tag === 0xc6 ? 4 : 0;
  if (width === 0 || at + 1 + width > end) return -1;
  let len = 0;
  for (let i = 1; i <= width; i += 1) len = len * 256 + buf[at + i];
  cursor.value = len;
  return at + 1 + width;
}

const cursor = { value: 0 };

/**
 * The message `parseToWorker` would make of the frame body `buf[start..end]`
 * if it is a `Request` without attachment, fields in the supervisor's order;
 * else null. `id` and `payload` are views of `buf`.
 */
function decodeRequest(buf, start, end) {
  if (!startsWith(buf, start, end, REQUEST_HEAD)) return null;
  let at = start + REQUEST_HEAD.length;
  if (at + 16 > end) return null;
  const id = buf.subarray(at, at + 16);
  at += 16;
  if (!startsWith(buf, at, end, ATTEMPT_KEY)) return null;
  at = readUint(buf, at + ATTEMPT_KEY.length, end, cursor);
  if (at < 0 || cursor.value > 0xffff_ffff) return null;
  const attempt = cursor.value;
  if (!startsWith(buf, at, end, CREATED_KEY)) return null;
  at = readUint(buf, at + CREATED_KEY.length, end, cursor);
  if (at < 0) return null;
  const createdAtMs = cursor.value;
  if (!startsWith(buf, at, end, PAYLOAD_KEY)) return null;
  at = readBinHead(buf, at + PAYLOAD_KEY.length, end, cursor);
  if (at < 0 || at + cursor.value !== end) return null;
  return { type: 'Request', id, attempt, createdAtMs, payload: buf.subarray(at, end), attachment: undefined };
}

/**
 * The bytes of the bin that `payload` (MessagePack) is, as the generic
 * decoder gives them (a view of `payload`, of its type), if it is exactly
 * one bin; else undefined.
 */
function binContent(payload) {
  const at = readBinHead(payload, 0, payload.length, cursor);
  if (at < 0 || at + cursor.value !== payload.length) return undefined;
  return payload.subarray(at, payload.length);
}

/** Bytes of the MessagePack header of a bin of `len` bytes. */
function binHeadLen(len) {
  return len < 0x100 ? 2 : len < 0x1_0000 ? 3 : 5;
}

/** Writes a bin header for `len` bytes at `at`; returns the end. */
function writeBinHead(out, at, len) {
  if (len < 0x100) {
    out[at] = 0xc4;
    out[at + 1] = len;
    return at + 2;
  }
  if (len < 0x1_0000) {
    out[at] = 0xc5;
    out.writeUInt16BE(len, at + 1);
    return at + 3;
  }
  out[at] = 0xc6;
  out.writeUInt32BE(len, at + 1);
  return at + 5;
}

/** Bytes of a MessagePack unsigned integer below 2^32. */
function uintLen(n) {
  return n <= 0x7f ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

function writeUint(out, at, n) {
  if (n <= 0x7f) {
    out[at] = n;
    return at + 1;
  }
  if (n <= 0xff) {
    out[at] = 0xcc;
    out[at + 1] = n;
    return at + 2;
  }
  if (n <= 0xffff) {
    out[at] = 0xcd;
    out.writeUInt16BE(n, at + 1);
    return at + 3;
  }
  out[at] = 0xce;
  out.writeUInt32BE(n, at + 1);
  return at + 5;
}

/** Length of the body of `Response{id, attempt, outcome: Ok(payload)}`, `payloadLen` the payload's bytes. */
function responseOkLen(attempt, payloadLen) {
  return RESPONSE_HEAD.length + 16 + ATTEMPT_KEY.length + uintLen(attempt) + OUTCOME_OK.length + binHeadLen(payloadLen) + payloadLen;
}

/**
 * Writes the body of `Response{id, attempt, outcome: Ok(..)}` at `at`, up to
 * the payload's bytes, which the caller writes next (`payloadLen` of them):
 * returns where they go.
 */
function writeResponseOkHead(out, at, idBytes, attempt, payloadLen) {
  RESPONSE_HEAD.copy(out, at);
  at += RESPONSE_HEAD.length;
  out.set(idBytes, at);
  at += 16;
  ATTEMPT_KEY.copy(out, at);
  at = writeUint(out, at + ATTEMPT_KEY.length, attempt);
  OUTCOME_OK.copy(out, at);
  return writeBinHead(out, at + OUTCOME_OK.length, payloadLen);
}

module.exports = { binContent, binHeadLen, decodeRequest, responseOkLen, writeBinHead, writeResponseOkHead };
