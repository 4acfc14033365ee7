'use strict';
// Answering attempts exactly once: responses, errors, acks, oversize and
// encode failures, and the in-flight table they leave.

const { ENVELOPE, pack, packShared } = require('./codec');
const { binHeadLen } = require('./hot');
const { build } = require('./messages');
const { AlreadyAnsweredError } = require('./request');
const { attemptKey } = require('./uuid');

/** The in-flight attempts of one worker and how each is answered. */
class Answers {
  /**
   * @param worker the Worker: its `link`, `maxFrameLen`, `channel` and
   *   `checkIdle()` are used.
   */
  constructor(worker) {
    this.worker = worker;
    this.inflight = new Map();
    this.served = 0;
    /** Response streams still being written. */
    this.streams = 0;
  }

  get maxPayloadLen() {
    return this.worker.maxFrameLen - ENVELOPE;
  }

  add(req) {
    this.inflight.set(req.key, req);
  }

  /** The in-flight attempt `(id, attempt)`, if any. */
  get(idBytes, attempt) {
    return this.inflight.get(attemptKey(idBytes, attempt));
  }

  /** Drops a cancelled attempt: aborts its signal, closes an untaken attachment. */
  cancel(req, reason) {
    if (!this.inflight.delete(req.key)) return;
    req.abort(reason);
    this.dropAttachment(req);
    this.worker.checkIdle();
  }

  answerValue(req, value) {
    this.claim(req);
    if (value instanceof Uint8Array) return this.sendOk(req, value, true);
    let bytes;
    try {
      // The shared view is safe while nothing else encodes before it is
      // copied: only an attachment's `Accepted` could, so that case copies.
      const v = value === undefined ? null : value;
      bytes = req.attachment === null ? packShared(v) : pack(v);
    } catch (e) {
      return this.finish(req, build.err('encode', `the answer does not encode as MessagePack: ${e.message}`));
    }
    return this.sendOk(req, bytes, false);
  }

  answerBytes(req, bytes) {
    this.claim(req);
    return this.sendOk(req, bytes, false);
  }

  answerError(req, kind, message) {
    this.claim(req);
    return this.finish(req, build.err(kind, message));
  }

  /** Marks `req` answered; a second answer is an AlreadyAnsweredError. */
  claim(req) {
    if (req.answered) throw new AlreadyAnsweredError(req);
    req.answered = true;
  }

  /**
   * Answers `Ok` with payload `bytes` (MessagePack; with `asBin`, `bytes`
   * encoded as a bin), or `oversize` if it is larger than max_payload_len.
   */
  sendOk(req, bytes, asBin, stream = false) {
    const len = asBin ? binHeadLen(bytes.length) + bytes.length : bytes.length;
    if (len > this.maxPayloadLen) {
      const msg = `the answer is ${len} bytes, more than max_payload_len ${this.maxPayloadLen}`;
      this.finish(req, build.err('oversize', msg));
      return false;
    }
    if (stream) return this.finish(req, build.ok(asBin ? pack(bytes) : bytes), true);
    if (!this.settle(req)) return false;
    const sent = this.worker.link.sendOk(req.idBytes, req.attempt, bytes, asBin);
    this.settled(req);
    return sent;
  }

  /** Sends the one Response (after `Accepted` if the attempt has an attachment). */
  finish(req, outcome, stream = false) {
    if (!this.settle(req)) return false;
    const sent = this.worker.link.send(build.response(req.idBytes, req.attempt, outcome, stream));
    this.settled(req);
    return sent;
  }

  /** Takes `req` out of the table for its answer; false if it is no longer there. */
  settle(req) {
    if (!this.inflight.delete(req.key)) return false;
    this.accept(req);
    this.served += 1;
    return true;
  }

  /** What follows an answer: the untaken attachment closed, the idle check. */
  settled(req) {
    this.dropAttachment(req);
    this.worker.checkIdle();
  }

  /** Sends `Accepted` once, if the attempt came with its descriptor. */
  accept(req) {
    if (req.attachment === null || req.accepted) return;
    req.accepted = true;
    this.worker.link.send(build.accepted(req.idBytes, req.attempt));
  }

  ackRequest(req) {
    if (req.acked || req.answered || !this.inflight.has(req.key)) return;
    this.accept(req);
    req.acked = true;
    this.worker.link.send(build.ack(req.idBytes, req.attempt));
  }

  /** Hands the attachment to the handler (sends `Accepted` first). */
  takeAttachment(req) {
    this.accept(req);
    return this.worker.channel.wrapAttachment(req);
  }

  /** Closes an attachment nobody took. */
  dropAttachment(req) {
    if (req.attachment !== null && req.taken === null && req.attachment.handle) {
      req.attachment.handle.close?.();
      req.attachment.handle = null;
    }
  }

  /** Answers with a response stream (section 11.3) through the Node channel. */
  async answerStream(req, value, source) {
    this.claim(req);
    const channel = this.worker.channel;
    if (channel === null) {
      this.finish(req, build.err('attachment', 'no fd channel: response streams need fd_channel = "node"'));
      throw new Error('no fd channel: response streams need the pool setting fd_channel = "node"');
    }
    const bytes = pack(value === undefined ? null : value);
    this.streams += 1;
    let counted = true;
    const done = () => {
      if (counted) this.streamDone();
      counted = false;
    };
    try {
      const writer = await channel.openResponseStream(req);
      writer.once('close', done);
      if (!this.sendOk(req, bytes, false, true)) {
        writer.destroy();
        return null;
      }
      if (source === undefined) return writer;
      await writer.pipeFrom(source);
      return null;
    } catch (e) {
      if (this.inflight.has(req.key)) {
        this.finish(req, build.err('attachment', `the response stream could not be sent: ${e.message}`));
      }
      done();
      throw e;
    }
  }

  streamDone() {
    this.streams -= 1;
    this.worker.checkIdle();
  }

  /** Nothing in flight and no response stream being written. */
  idle() {
    return this.inflight.size === 0 && this.streams === 0;
  }

  /** Aborts every attempt (the link is gone). */
  abortAll(reason) {
    for (const req of this.inflight.values()) req.abort(reason);
    this.inflight.clear();
  }
}

module.exports = { Answers };
