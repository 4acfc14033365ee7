'use strict';
// The worker's side of the fd channel, Node flavour (contract B): attachments
// (kind 1, inline or split), connection offers (kind 3), broadcasts with a
// descriptor (kind 4), response streams (kind 2) out.

const net = require('node:net');
const { unpack } = require('./codec');
const { build, requestFrame } = require('./messages');
const { attemptKey, uuidString } = require('./uuid');
const { ChunkReader, ChunkWriter } = require('./chunked');
const { Incoming } = require('./incoming');
const { socketPair } = require('./pair');

/** Unmatched halves (frames or descriptors) kept at most, like the Rust SDK. */
const MAX_UNMATCHED = 1024;
/** Cancelled keys remembered for requests not seen yet. */
const MAX_CANCELS = 1024;

/** The node-channel module, if this package has it. */
function loadNodeChannel() {
  try {
    return require('./node-channel');
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes('node-channel')) return null;
    throw e;
  }
}

/** A bounded insertion-ordered map: past `max`, the oldest goes to `evict`. */
class Bounded extends Map {
  constructor(max, evict) {
    super();
    this.max = max;
    this.evict = evict;
  }

  set(key, value) {
    super.set(key, value);
    if (this.size > this.max) {
      const [oldest, v] = this.entries().next().value;
      this.delete(oldest);
      this.evict(v);
    }
    return this;
  }
}

/** The SDK's fd channel: null unless the supervisor gave this worker the Node channel. */
function openChannel(worker) {
  const mod = loadNodeChannel();
  const ch = mod ? mod.openNodeChannel() : null;
  return ch === null ? null : new Channel(worker, ch);
}

class Channel {
  constructor(worker, ch) {
    this.worker = worker;
    this.ch = ch;
    this.frames = new Bounded(MAX_UNMATCHED, (f) => this.orphanFrame(f));
    this.handles = new Bounded(MAX_UNMATCHED, (h) => h.close?.());
    this.cancels = new Bounded(MAX_CANCELS, () => {});
    this.current = null;
    ch.on('descriptor', (d) => this.onDescriptor(d));
    ch.on('error', (e) => process.emitWarning(`nanny-worker: fd channel: ${e.message}`));
    ch.unref();
  }

  onDescriptor(d) {
    if (d.kind === 1) return this.onAttachment(d);
    if (d.kind === 3) return this.onOffer(d);
    if (d.kind === 4) return this.onBroadcast(d);
    process.emitWarning(`nanny-worker: fd channel message of kind ${d.kind} ignored`);
    d.handle?.close?.();
  }

  onAttachment({ id, attempt, data, handle }) {
    const key = attemptKey(id, attempt);
    if (this.cancels.has(key) || this.worker.answers.get(id, attempt)) return handle?.close?.();
    if (data.length === 0) return this.pairHandle(key, handle);
    let frame;
    try {
      frame = requestFrame(unpack(data), 'inline Request');
      if (attemptKey(frame.id, frame.attempt) !== key || frame.attachment === undefined) throw new Error('does not match its tag');
    } catch (e) {
      handle?.close?.();
      return this.answerUnmatched(id, attempt, `inline request frame: ${e.message}`);
    }
    this.worker.onRequest(frame, { handle });
  }

  pairHandle(key, handle) {
    const frame = this.frames.get(key);
    if (frame === undefined) return this.handles.set(key, handle);
    this.frames.delete(key);
    this.worker.onRequest(frame, { handle });
    this.worker.checkIdle();
  }

  /** A `Request` frame with an attachment read on the framed socket (split). */
  splitFrame(frame) {
    const key = attemptKey(frame.id, frame.attempt);
    if (this.cancels.has(key)) return;
    const handle = this.handles.get(key);
    if (handle === undefined) return this.frames.set(key, frame);
    this.handles.delete(key);
    this.worker.onRequest(frame, { handle });
  }

  orphanFrame(frame) {
    this.answerUnmatched(frame.id, frame.attempt, 'the attachment never arrived');
  }

  answerUnmatched(id, attempt, message) {
    this.worker.link.send(build.response(id, attempt, build.err('attachment', message), false));
  }

  /** A Cancel for an attempt not in flight: drop its waiting half, remember it. */
  cancelled({ id, attempt }) {
    const key = attemptKey(id, attempt);
    this.frames.delete(key);
    this.handles.get(key)?.close?.();
    this.handles.delete(key);
    this.cancels.set(key, true);
    this.worker.checkIdle();
  }

  /** The handler takes `req`'s attachment: a net.Socket, or a Readable for a Stream. */
  wrapAttachment(req) {
    const socket = new net.Socket({ handle: req.attachment.handle, readable: true, writable: true });
    req.attachment.handle = null;
    return req.attachmentKind === 'Stream' ? new ChunkReader(socket) : socket;
  }

  /** A socketpair whose far end goes to the supervisor (kind 2); resolves to the writer. */
  async openResponseStream(req) {
    const [near, far] = await socketPair();
    try {
      await this.ch.sendStream({ id: req.idBytes, attempt: req.attempt }, far);
    } catch (e) {
      near.destroy();
      far.destroy();
      throw e;
    }
    return new ChunkWriter(near);
  }

  onOffer(d) {
    let frame = null;
    try {
      const m = unpack(d.data);
      if (typeof m.listener === 'string' && (m.kind === 'Tcp' || m.kind === 'Unix')) frame = m;
    } catch {
      // malformed: bounced below
    }
    const offer = { id: d.id, attempt: d.attempt, handle: d.handle, listener: frame?.listener, kind: frame?.kind };
    if (frame === null || this.current === null || !this.current.offer(offer)) this.bounce(offer, frame === null);
  }

  bounce(offer, malformed) {
    offer.handle?.close?.();
    this.worker.link.send(build.connectionBounced(offer.id, offer.attempt));
    if (malformed && this.current !== null && !this.current.ended) this.worker.link.send(build.listening(true));
  }

  onBroadcast(d) {
    let m;
    try {
      m = unpack(d.data);
      if (typeof m.event !== 'string' || !(m.payload instanceof Uint8Array)) throw new Error('not {event, payload}');
    } catch (e) {
      d.handle?.close?.();
      return process.emitWarning(`nanny-worker: broadcast with a descriptor ${uuidString(d.id)}: ${e.message}`);
    }
    this.worker.onBroadcast(m.event, m.payload, d.handle);
  }

  /** `worker.incoming()`: one stream of connections at a time. */
  incoming(options) {
    if (this.current !== null && !this.current.ended) throw new Error('already listening: one incoming() at a time');
    this.current = new Incoming(this.worker, options);
    return this.current;
  }

  /** No new connections (Drain, a soft kill). */
  drain() {
    this.current?.end();
  }

  /** No frame waits for its descriptor. */
  idle() {
    return this.frames.size === 0;
  }

  close() {
    this.ch.close();
  }
}

module.exports = { openChannel };
