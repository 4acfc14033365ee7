'use strict';
// The framed socket: reads frames into messages, writes frames batched per tick.

const net = require('node:net');
const { EventEmitter } = require('node:events');
const { FrameReader, ProtocolError, frame } = require('./codec');
const { parseToWorker } = require('./messages');

/**
 * One framed link on an inherited socket fd. Events: `message` (a parsed
 * ToWorker message), `protocolError` (ProtocolError), `end` (end of file or a
 * broken pipe). Frames written in one tick go out in one `write`.
 */
class Link extends EventEmitter {
  constructor(fd, maxFrameLen) {
    super();
    this.reader = new FrameReader(maxFrameLen);
    this.maxFrameLen = maxFrameLen;
    this.queue = [];
    this.flushing = false;
    this.closed = false;
    this.written = Promise.resolve();
    this.socket = new net.Socket({ fd, readable: true, writable: true });
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('end', () => this.finish());
    this.socket.on('error', () => this.finish());
    this.socket.on('close', () => this.finish());
  }

  onData(chunk) {
    let messages;
    try {
      messages = this.reader.push(chunk);
    } catch (e) {
      this.fail(e);
      return;
    }
    for (const raw of messages) {
      if (this.closed) return;
      let message;
      try {
        message = parseToWorker(raw);
      } catch (e) {
        this.fail(e);
        return;
      }
      this.emit('message', message);
    }
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
    const bytes = frame(message);
    if (bytes.length - 4 > this.maxFrameLen) {
      throw new RangeError(`frame of ${bytes.length - 4} bytes exceeds max_frame_len ${this.maxFrameLen}`);
    }
    if (this.closed) return false;
    this.queue.push(bytes);
    if (!this.flushing) {
      this.flushing = true;
      process.nextTick(() => this.flush());
    }
    return true;
  }

  /** Writes what is queued now (also called by `drain`). */
  flush() {
    this.flushing = false;
    if (this.queue.length === 0 || this.closed) return;
    const bytes = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
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
