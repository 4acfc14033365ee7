'use strict';
// The framed socket: reads frames into messages, writes frames batched per tick.

const net = require('node:net');
const { EventEmitter } = require('node:events');
const { FrameReader, ProtocolError, decodeBody, packShared } = require('./codec');
const { parseToWorker } = require('./messages');
const { binHeadLen, decodeRequest, responseOkLen, writeBinHead, writeResponseOkHead } = require('./hot');

/** The first output buffer of a tick; a tick that writes more gets a larger one. */
const OUT_MIN = 16 * 1024;

/**
 * One framed link on an inherited socket fd. Events: `message` (a parsed
 * ToWorker message), `protocolError` (ProtocolError), `end` (end of file or a
 * broken pipe). Frames written in one tick are encoded into one buffer and go
 * out in one `write`.
 */
class Link extends EventEmitter {
  constructor(fd, maxFrameLen) {
    super();
    this.reader = new FrameReader(maxFrameLen);
    this.maxFrameLen = maxFrameLen;
    /** The frames of this tick, encoded: `out[0..outLen]`; null once flushed. */
    this.out = null;
    this.outLen = 0;
    this.flushing = false;
    this.closed = false;
    this.written = Promise.resolve();
    this.socket = new net.Socket({ fd, readable: true, writable: true });
    this.onBody = (buf, start, end) => this.body(buf, start, end);
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('end', () => this.finish());
    this.socket.on('error', () => this.finish());
    this.socket.on('close', () => this.finish());
  }

  onData(chunk) {
    const error = this.reader.each(chunk, this.onBody);
    if (error !== null) this.fail(error);
  }

  /** One frame body: the hot Request by hand, anything else the generic way. */
  body(buf, start, end) {
    if (this.closed) return;
    let message;
    try {
      message = decodeRequest(buf, start, end) ?? parseToWorker(decodeBody(buf.subarray(start, end)));
    } catch (e) {
      this.fail(e);
      return;
    }
    this.emit('message', message);
  }

  fail(error) {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.emit('protocolError', error instanceof ProtocolError ? error : new ProtocolError(String(error)));
  }

  finish() {
    if (this.closed) return;
    this.closed = true;
    this.emit('end');
  }

  /** Raises the frame limit once the supervisor's hello names it. */
  setMaxFrameLen(n) {
    this.maxFrameLen = n;
    this.reader.maxFrameLen = n;
  }

  /** Queues one message; throws a RangeError if its body exceeds max_frame_len. */
  send(message) {
    const body = packShared(message);
    const at = this.reserve(body.length);
    if (at < 0) return false;
    this.out.set(body, at);
    return true;
  }

  /**
   * Queues `Response{id, attempt, outcome: Ok(payload)}` without building it:
   * the payload is `bytes` (MessagePack) or, with `asBin`, `bytes` encoded
   * as a MessagePack bin. The same bytes as `send(build.response(..))`.
   */
  sendOk(idBytes, attempt, bytes, asBin) {
    const payloadLen = asBin ? binHeadLen(bytes.length) + bytes.length : bytes.length;
    let at = this.reserve(responseOkLen(attempt, payloadLen));
    if (at < 0) return false;
    at = writeResponseOkHead(this.out, at, idBytes, attempt, payloadLen);
    if (asBin) at = writeBinHead(this.out, at, bytes.length);
    this.out.set(bytes, at);
    return true;
  }

  /**
   * Makes room for a frame of `bodyLen` bytes in this tick's buffer and
   * writes its length prefix; returns where its body goes, or -1 if the link
   * is closed. Throws a RangeError if the body exceeds max_frame_len.
   */
  reserve(bodyLen) {
    if (bodyLen > this.maxFrameLen) {
      throw new RangeError(`frame of ${bodyLen} bytes exceeds max_frame_len ${this.maxFrameLen}`);
    }
    if (this.closed) return -1;
    const need = this.outLen + 4 + bodyLen;
    if (this.out === null || need > this.out.length) {
      const grown = Buffer.allocUnsafe(Math.max(OUT_MIN, need, this.out === null ? 0 : 2 * this.out.length));
      if (this.out !== null) this.out.copy(grown, 0, 0, this.outLen);
      this.out = grown;
    }
    this.out.writeUInt32BE(bodyLen, this.outLen);
    this.outLen = need;
    if (!this.flushing) {
      this.flushing = true;
      process.nextTick(() => this.flush());
    }
    return need - bodyLen;
  }

  /** Writes what is queued now (also called by `drain`). */
  flush() {
    this.flushing = false;
    if (this.outLen === 0 || this.closed) return;
    const bytes = this.out.subarray(0, this.outLen);
    this.out = null;
    this.outLen = 0;
    this.written = new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  /** Resolves once every frame queued so far is written (or the link is gone). */
  drain() {
    this.flush();
    return this.written;
  }

  /** Lets the process exit while the link is open (or not). */
  unref() {
    this.socket.unref();
  }

  ref() {
    this.socket.ref();
  }

  /** Closes the socket. */
  close() {
    this.closed = true;
    this.socket.destroy();
  }
}

module.exports = { Link };
