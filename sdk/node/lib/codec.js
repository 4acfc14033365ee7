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

/**
 * Encodes `value` into the encoder's own buffer: a view valid until the next
 * encode, for a caller that copies it at once.
 */
function packShared(value) {
  return encoder.encodeSharedRef(value);
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
 * Cuts a byte stream into frame bodies. `each(chunk, fn)` calls
 * `fn(buf, start, end)` for every frame body that chunk completed, in order
 * (`buf[start..end]`, valid during the call; views of it stay valid), and
 * returns a ProtocolError for a frame longer than `maxFrameLen` (before its
 * body is read), else null. `push(chunk)` returns the decoded messages
 * instead, and throws that error, or one for a body that is not one
 * MessagePack value nested less than 32 deep.
 */
class FrameReader {
  constructor(maxFrameLen = DEFAULT_MAX_FRAME_LEN) {
    this.maxFrameLen = maxFrameLen;
    /** Bytes of an incomplete frame, in arrival order. */
    this.chunks = [];
    this.buffered = 0;
    /** Whole length (prefix included) of the frame in `chunks`, once its prefix is in; else 0. */
    this.need = 0;
  }

  /** Feeds bytes; calls `fn` for each frame body now complete; a ProtocolError or null. */
  each(chunk, fn) {
    let buf = chunk;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.need === 0 && this.buffered >= 4) {
        this.chunks = [Buffer.concat(this.chunks)];
        const error = this.measure(this.chunks[0], 0);
        if (error !== null) return error;
      }
      if (this.need === 0 || this.buffered < this.need) return null;
      buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = [];
      this.buffered = 0;
      this.need = 0;
    }
    let at = 0;
    try {
      while (buf.length - at >= 4) {
        const error = this.measure(buf, at);
        if (error !== null) return error;
        const end = at + this.need;
        if (end > buf.length) break;
        this.need = 0;
        const start = at + 4;
        at = end;
        fn(buf, start, end);
      }
    } finally {
      this.keep(buf, at);
    }
    return null;
  }

  /** Reads the length prefix at `at` into `need`; a ProtocolError if the frame is too long. */
  measure(buf, at) {
    const len = buf.readUInt32BE(at);
    if (len > this.maxFrameLen) {
      return new ProtocolError(`frame of ${len} bytes is longer than max_frame_len ${this.maxFrameLen}`);
    }
    this.need = 4 + len;
    return null;
  }

  /** Keeps `buf[at..]`, the start of the next frame. */
  keep(buf, at) {
    if (at >= buf.length) {
      this.need = 0;
      return;
    }
    this.chunks = [buf.subarray(at)];
    this.buffered = buf.length - at;
    if (this.buffered < 4) this.need = 0;
  }

  /** Feeds bytes; returns the messages now complete, in order. */
  push(chunk) {
    const out = [];
    const error = this.each(chunk, (buf, start, end) => out.push(decodeBody(buf.subarray(start, end))));
    if (error !== null) throw error;
    return out;
  }

  /** Bytes buffered that make no complete frame yet. */
  pending() {
    return this.buffered;
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
  packShared,
  unpack,
  unpackPayload,
};
