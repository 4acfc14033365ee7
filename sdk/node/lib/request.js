'use strict';
// One attempt of a request, as a handler sees it.

const { unpackPayload } = require('./codec');
const { binContent } = require('./hot');

/** `decoded` before the payload is first decoded. */
const NOT_DECODED = Symbol('not decoded');
const { attemptKey, uuidString } = require('./uuid');

/** A second answer to one attempt. */
class AlreadyAnsweredError extends Error {
  constructor(req) {
    super(`request ${req.id}#${req.attempt} is already answered`);
    this.name = 'AlreadyAnsweredError';
  }
}

/**
 * One attempt. Answer it exactly once: `respond`, `respondRaw`, `fail` or
 * `respondStream`. `cancelled` aborts when the supervisor gives up on it.
 */
class Request {
  /** @param core the worker's internal answering side (see worker.js). */
  constructor(core, frame, attachment) {
    this.core = core;
    this.idBytes = frame.id;
    /** This attempt's key in the worker's tables. */
    this.key = attemptKey(frame.id, frame.attempt);
    /** The attempt number, from 1. */
    this.attempt = frame.attempt;
    /** When the request was first enqueued, ms since the Unix epoch (supervisor clock). */
    this.createdAt = frame.createdAtMs;
    /** The raw payload bytes. */
    this.payload = frame.payload;
    /** `"Tcp"`, `"Unix"`, `"Fd"`, `"Stream"` or undefined. */
    this.attachmentKind = frame.attachment;
    this.attachment = attachment ?? null;
    this.answered = false;
    this.acked = false;
    this.accepted = false;
    this.decoded = NOT_DECODED;
    this.taken = null;
    // Made on first use: most handlers never look at their id or signal.
    this.idString = undefined;
    this.signalSource = null;
    this.abortReason = undefined;
  }

  /** The request id, a UUID string (the same for every attempt). */
  get id() {
    if (this.idString === undefined) this.idString = uuidString(this.idBytes);
    return this.idString;
  }

  /** True once the attempt is cancelled or the link ended. */
  get aborted() {
    return this.abortReason !== undefined;
  }

  /** Aborts `cancelled` with `reason` (an Error); at most once. */
  abort(reason) {
    if (this.aborted) return;
    this.abortReason = reason;
    this.signalSource?.abort(reason);
  }

  /** The payload decoded from MessagePack (throws on a payload that is not). */
  get data() {
    if (this.decoded === NOT_DECODED) this.decoded = binContent(this.payload) ?? unpackPayload(this.payload);
    return this.decoded;
  }

  /** Aborted (reason: an Error) when the attempt is cancelled or the link ends. */
  get cancelled() {
    if (this.signalSource === null) {
      this.signalSource = new AbortController();
      if (this.aborted) this.signalSource.abort(this.abortReason);
    }
    return this.signalSource.signal;
  }

  /** A connection is attached: `Tcp`, `Unix`, or `Fd` (a stream socket given as a plain descriptor). */
  get hasSocket() {
    return this.attachmentKind === 'Tcp' || this.attachmentKind === 'Unix' || this.attachmentKind === 'Fd';
  }

  /** A chunked byte stream is attached. */
  get hasStream() {
    return this.attachmentKind === 'Stream';
  }

  /** The attached connection as a `net.Socket` (takes it: sends `Accepted`); null if none or cancelled. */
  get socket() {
    return this.hasSocket ? this.take() : null;
  }

  /** The attached stream as a Readable of its bytes (takes it); null if none or cancelled. */
  get stream() {
    return this.hasStream ? this.take() : null;
  }

  take() {
    if (this.taken !== null) return this.taken;
    if (this.attachment === null || this.aborted) return null;
    this.taken = this.core.takeAttachment(this);
    return this.taken;
  }

  /** Answers with `value` encoded as MessagePack. False if the answer was not sent (cancelled, link gone, oversize). */
  respond(value) {
    return this.core.answerValue(this, value);
  }

  /** Answers with raw payload bytes. */
  respondRaw(bytes) {
    return this.core.answerBytes(this, bytes);
  }

  /** Answers with a remote error: `fail(kind, message)` or `fail(error)` (kind `error.kind` or `handler`). */
  fail(kind, message) {
    if (kind instanceof Error) return this.core.answerError(this, kind.kind ?? 'handler', kind.message);
    return this.core.answerError(this, String(kind), String(message ?? ''));
  }

  /**
   * Answers with `value` and a response stream: with `source` (a Readable, an
   * async iterable of chunks, a Buffer or string) resolves once it is written;
   * without, resolves to a Writable to write and `end()`.
   */
  respondStream(value, source) {
    return this.core.answerStream(this, value, source);
  }

  /** Tells the supervisor the request was taken (at most once; informational). */
  ack() {
    this.core.ackRequest(this);
  }

  toJSON() {
    return { id: this.id, attempt: this.attempt, createdAt: this.createdAt, attachment: this.attachmentKind };
  }
}

module.exports = { AlreadyAnsweredError, Request };
