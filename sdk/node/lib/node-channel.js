'use strict';
/**
 * nanny's fd channel, Node.js flavour: descriptors between the supervisor
 * and this worker on Node's own IPC channel (`process.channel`), for a
 * pool configured with `fd_channel = "node"` (worker-sdk/PROTOCOL.md section 11.6).
 *
 * The supervisor starts `node` with `NODE_CHANNEL_FD` (a SOCK_STREAM Unix
 * socketpair), `NODE_CHANNEL_SERIALIZATION_MODE=json` and
 * `NANNY_NODE_CHANNEL=1`; Node opens the channel itself. Every message
 * from the supervisor is one `process.on('message')` with
 * `msg = {nanny: base64(tag + data)}` and one handle: the 21-byte tag is
 * the request id (16 bytes), the attempt (u32 big-endian) and the kind
 * (1 attachment, 3 connection, 4 broadcast with a descriptor), the data
 * what the kind carries (kind 1: the request's MessagePack map; kinds 3
 * and 4: a MessagePack map). A response stream (kind 2) goes the other
 * way with `process.send({nanny: base64(tag)}, socket)`.
 *
 *   const ch = openNodeChannel();            // null without the channel
 *   ch.on('descriptor', ({ id, attempt, kind, data, handle }) => { ... });
 *   ch.on('error', (err) => { ... });        // a malformed message
 *   await ch.sendStream({ id, attempt }, socket);
 *   ch.close();
 *
 * `handle` is a raw libuv handle (TCP or Pipe), made non-blocking (they
 * may arrive blocking; libuv needs them non-blocking): wrap a connection
 * with `new net.Socket({ handle, readable: true, writable: true })`, a listening
 * socket with `new net.Server().listen(handle)`. A descriptor nobody
 * listens for is closed. The channel never keeps the event loop alive by
 * itself (`ref()` to make it).
 */

const { EventEmitter } = require('node:events');

/** Bytes of a tag: id (16), attempt (4, big-endian), kind (1). */
const TAG_LEN = 21;
/** The tag kinds. */
const KIND = Object.freeze({ ATTACHMENT: 1, RESPONSE_STREAM: 2, CONNECTION: 3, BROADCAST: 4 });

/** The tag of `{ id, attempt }` for `kind`, as 21 bytes. */
function encodeTag({ id, attempt }, kind) {
  if (!(id instanceof Uint8Array) || id.length !== 16) {
    throw new TypeError('id must be a Uint8Array of 16 bytes');
  }
  if (!Number.isInteger(attempt) || attempt < 0 || attempt > 0xffffffff) {
    throw new TypeError('attempt must be a u32');
  }
  const tag = Buffer.alloc(TAG_LEN);
  tag.set(id, 0);
  tag.writeUInt32BE(attempt, 16);
  tag[20] = kind;
  return tag;
}

/** `{ id, attempt, kind, data }` from a message's bytes; null if too short. */
function decodeMessage(bytes) {
  if (bytes.length < TAG_LEN) return null;
  return {
    id: new Uint8Array(bytes.subarray(0, 16)),
    attempt: bytes.readUInt32BE(16),
    kind: bytes[20],
    data: new Uint8Array(bytes.subarray(TAG_LEN)),
  };
}

function closeHandle(handle) {
  if (handle && typeof handle.close === 'function') {
    try {
      handle.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Makes a received descriptor non-blocking; null once it is, else why not.
 * The supervisor's descriptors may arrive blocking (a plain-fd attachment,
 * a request stream's socketpair, a std listener), and libuv expects
 * EAGAIN: a write larger than a blocking socket's buffer stops the event
 * loop until the other side reads.
 * The flag belongs to the open file, so it also holds for the supervisor's
 * copy (and, for a broadcast socket, the caller's).
 */
function nonBlocking(handle) {
  if (typeof handle.setBlocking !== 'function') return 'not a stream handle';
  const rc = handle.setBlocking(false);
  return rc === 0 || rc === undefined ? null : `error ${rc}`;
}

/** The fd channel on `process.channel`. Made by `openNodeChannel()`. */
class NodeChannel extends EventEmitter {
  constructor() {
    super();
    this._open = true;
    this._onMessage = (msg, handle) => this._receive(msg, handle);
    process.on('message', this._onMessage);
    // A 'message' listener refs the channel; the worker's own socket is
    // what keeps a worker alive.
    this.unref();
  }

  _receive(msg, handle) {
    if (!msg || typeof msg !== 'object' || typeof msg.nanny !== 'string') {
      return; // not one of ours
    }
    const message = decodeMessage(Buffer.from(msg.nanny, 'base64'));
    if (!message || !handle) {
      closeHandle(handle);
      const why = message ? 'without a descriptor' : `of ${msg.nanny.length} base64 characters, shorter than a tag`;
      this._fail(new Error(`node channel: a message ${why}`));
      return;
    }
    if (this.listenerCount('descriptor') === 0) {
      closeHandle(handle);
      return;
    }
    const err = nonBlocking(handle);
    if (err !== null) {
      closeHandle(handle);
      this._fail(new Error(`node channel: a descriptor that cannot be made non-blocking: ${err}`));
      return;
    }
    this.emit('descriptor', { ...message, handle });
  }

  _fail(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * Sends `socket` (a net.Socket; its handle leaves this process) as the
   * response stream of attempt `{ id, attempt }` (kind 2). The socket must
   * never have been read from: bytes libuv read before the handle left are
   * lost to the supervisor (the `far` end of lib/pair.js's `socketPair()`,
   * or one accepted by a `net.createServer({ pauseOnConnect: true })`).
   * Resolves once
   * Node has written it (Node sends a handle only after the supervisor
   * acknowledged the one before, so the one before was ACKed by then).
   */
  sendStream(key, socket) {
    return new Promise((resolve, reject) => {
      if (!this._open || typeof process.send !== 'function' || !process.connected) {
        reject(new Error('node channel: closed'));
        return;
      }
      let tag;
      try {
        tag = encodeTag(key, KIND.RESPONSE_STREAM);
      } catch (err) {
        reject(err);
        return;
      }
      process.send({ nanny: tag.toString('base64') }, socket, { keepOpen: false }, (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Stops listening; descriptors that come later are Node's to drop. */
  close() {
    if (!this._open) return;
    this._open = false;
    process.removeListener('message', this._onMessage);
  }

  /** The channel keeps the event loop alive. */
  ref() {
    if (process.channel && typeof process.channel.ref === 'function') process.channel.ref();
  }

  /** It does not (the default). */
  unref() {
    if (process.channel && typeof process.channel.unref === 'function') process.channel.unref();
  }
}

/**
 * The fd channel, or null unless this worker was started with one
 * (`NANNY_NODE_CHANNEL=1` and Node opened `process.channel`).
 */
function openNodeChannel() {
  if (process.env.NANNY_NODE_CHANNEL !== '1' || !process.channel) return null;
  return new NodeChannel();
}

module.exports = { openNodeChannel, NodeChannel, encodeTag, decodeMessage, TAG_LEN, KIND };
