'use strict';
// MessagePack and the length-prefixed framing of PROTOCOL.md sections 2 and 3.

const { Encoder, Decoder } = require('@msgpack/msgpack');

/** Frames nest less than this deep (PROTOCOL.md section 2). */
const MAX_FRAME_DEPTH = 32;
/** Payloads the SDK decodes nest less than this deep. */
const MAX_PAYLOAD_DEPTH = 256;
/** Room the envelope of a payload takes: `max_payload_len = max_frame_len - 256`. */
const ENVELOPE = 256;
/** The default `max_frame_len` (8 MiB). */
const DEFAULT_MAX_FRAME_LEN = 8 * 1024 * 1024;

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/** Encodes a value as MessagePack (structs as maps, `undefined` fields left out). */
function pack(value) {
  return encoder.encode(value);
}

/** Decodes one MessagePack value; throws on trailing bytes or bad data. */
function unpack(bytes) {
  return decoder.decode(bytes);
}

/** Nesting depth of a decoded value (arrays and maps count one each). */
function depth(value) {
  let deepest = 0;
  const stack = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop();
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue;
    deepest = Math.max(deepest, d + 1);
    if (deepest >= MAX_PAYLOAD_DEPTH) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

/** Decodes a payload (a request's, a broadcast's...): MessagePack, nesting bounded. */
function unpackPayload(bytes) {
  const value = unpack(bytes);
  if (depth(value) >= MAX_PAYLOAD_DEPTH) throw new RangeError('payload nests 256 deep or more');
  return value;
}

/** One whole frame: 4-byte big-endian length, then the MessagePack body of `message`. */
function frame(message) {
  const body = pack(message);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** A protocol error (PROTOCOL.md section 8): the link is closed. */
class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * Cuts a byte stream into frame bodies. `push(chunk)` returns the decoded
 * messages that chunk completed; it throws a ProtocolError for a frame longer
 * than `maxFrameLen` (before reading its body) or a body that is not one
 * MessagePack value nested less than 32 deep.
 */
class FrameReader {
  constructor(maxFrameLen = DEFAULT_MAX_FRAME_LEN) {
    this.maxFrameLen = maxFrameLen;
    this.chunks = [];
    this.buffered = 0;
  }

  /** Feeds bytes; returns the messages now complete, in order. */
  push(chunk) {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out = [];
    for (;;) {
      if (this.buffered < 4) return out;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len > this.maxFrameLen) {
        throw new ProtocolError(`frame of ${len} bytes is longer than max_frame_len ${this.maxFrameLen}`);
      }
      if (this.buffered < 4 + len) return out;
      const whole = this.take(4 + len);
      out.push(decodeBody(whole.subarray(4)));
    }
  }

  /** Bytes buffered that make no complete frame yet. */
  pending() {
    return this.buffered;
  }

  peek(n) {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  take(n) {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

/** Decodes a frame body into a message value; a ProtocolError if it is no MessagePack value. */
function decodeBody(body) {
  let value;
  try {
    value = unpack(body);
  } catch (e) {
    throw new ProtocolError(`frame body is not one MessagePack value: ${e.message}`);
  }
  if (depth(value) >= MAX_FRAME_DEPTH) throw new ProtocolError('frame nests 32 deep or more');
  return value;
}

module.exports = {
  DEFAULT_MAX_FRAME_LEN,
  ENVELOPE,
  FrameReader,
  ProtocolError,
  decodeBody,
  frame,
  pack,
  unpack,
  unpackPayload,
};
