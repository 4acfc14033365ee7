'use strict';
// Messages between workers, queries and questions (PROTOCOL.md sections 13, 14).

const { pack, unpackPayload } = require('./codec');
const { build } = require('./messages');

/** Ask timeouts, as the Rust SDK's: 10 s, 30 s for a spawn. */
const ASK_TIMEOUT_MS = 10_000;
const SPAWN_TIMEOUT_MS = 30_000;

/** A question's `Err` answer (or `timeout`): `kind` is one of section 13's. */
class AskError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.name = 'AskError';
    this.kind = kind;
    this.detail = message;
  }
}

/** `'public'`, `{group}`, `{id}` or `{name}` as the wire's `Recipients`. */
function recipients(to) {
  if (to === 'public') return { wire: 'Public', nameLen: 0 };
  if (to && typeof to.group === 'string') return { wire: { Group: to.group }, nameLen: Buffer.byteLength(to.group) };
  if (to && to.id !== undefined) return { wire: { Private: { Id: to.id } }, nameLen: 0 };
  if (to && typeof to.name === 'string') return { wire: { Private: { Name: to.name } }, nameLen: Buffer.byteLength(to.name) };
  throw new TypeError(`not a recipient: ${JSON.stringify(to)} (use 'public', {group}, {id} or {name})`);
}

/** A kill target: a pid number, or `{pid}`, `{id}`, `{name}`. */
function target(t) {
  if (typeof t === 'number') return { Pid: t };
  if (t && t.pid !== undefined) return { Pid: t.pid };
  if (t && t.id !== undefined) return { Id: t.id };
  if (t && typeof t.name === 'string') return { Name: t.name };
  throw new TypeError(`not a kill target: ${JSON.stringify(t)}`);
}

function decodeOr(bytes, fallback) {
  try {
    return unpackPayload(bytes);
  } catch {
    return fallback;
  }
}

/** The messaging side of one Worker. */
class Messaging {
  constructor(worker) {
    this.worker = worker;
    this.nextQuery = 0;
    this.nextAsk = 0;
    this.queries = new Map();
    this.asks = new Map();
    this.confirmations = new Map();
  }

  /** Publishes `data` (MessagePack) to `to`; true once queued. */
  publish(to, data) {
    const { wire, nameLen } = recipients(to);
    const bytes = pack(data === undefined ? null : data);
    const limit = this.worker.maxPayloadLen - 64 - nameLen;
    if (bytes.length > limit) throw new RangeError(`message of ${bytes.length} bytes; at most ${limit} fit`);
    return this.worker.link.send(build.publish(wire, bytes));
  }

  /** Sends one confirmation of `identifier` to every messaging worker. */
  confirm(identifier) {
    return this.worker.link.send(build.publish('Confirmation', pack(String(identifier))));
  }

  /** Calls `fn(metas)` each time `n` confirmations of `identifier` came, then sends `Confirmed`. */
  onConfirmation(n, identifier, fn) {
    this.confirmations.set(String(identifier), { n, fn, metas: [] });
  }

  onMessage(m) {
    if (m.kind === 'confirmation') return this.onConfirm(m);
    const message = { kind: m.kind, from: m.meta, data: decodeOr(m.data, undefined), payload: m.data };
    this.worker.fire('message', message);
  }

  onConfirm(m) {
    const identifier = decodeOr(m.data, null);
    const entry = typeof identifier === 'string' ? this.confirmations.get(identifier) : undefined;
    if (entry === undefined) return;
    entry.metas.push(m.meta);
    if (entry.metas.length < entry.n) return;
    const metas = entry.metas;
    entry.metas = [];
    this.worker.link.send(build.confirmed(identifier));
    entry.fn(metas);
  }

  /** `"ClusterInfo"` or `"Stats"`: resolves to the answer's body. */
  query(kind) {
    const id = this.nextQuery++;
    return new Promise((resolve) => {
      this.queries.set(id, { kind, resolve });
      this.worker.link.send(build.query(id, kind));
    });
  }

  onQueryAnswer(m) {
    const entry = this.queries.get(m.id);
    if (entry === undefined) return;
    this.queries.delete(m.id);
    entry.resolve(m.answer[entry.kind] ?? m.answer);
  }

  /** Asks one question; resolves to the decoded `Ok`, rejects with an AskError. */
  ask(question, timeoutMs = ASK_TIMEOUT_MS) {
    const id = this.nextAsk++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asks.delete(id);
        reject(new AskError('timeout', `no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.asks.set(id, { resolve, reject, timer });
      this.worker.link.send(build.ask(id, question));
    });
  }

  onAnswer(m) {
    const entry = this.asks.get(m.id);
    if (entry === undefined) return;
    this.asks.delete(m.id);
    clearTimeout(entry.timer);
    if (m.outcome.err) return entry.reject(new AskError(m.outcome.err.kind, m.outcome.err.message));
    try {
      entry.resolve(unpackPayload(m.outcome.ok));
    } catch (e) {
      entry.reject(new AskError('failed', `the answer does not decode: ${e.message}`));
    }
  }

  askEvent(event, payload) {
    return this.ask({ Event: { event: String(event), payload: pack(payload === undefined ? null : payload) } });
  }

  kill(t, code = 0) {
    return this.ask({ Kill: { target: target(t), code } });
  }

  spawn(pool, count, { respawn = false, args, cpus } = {}) {
    const spec = { pool, count, respawn };
    if (args && args.length > 0) spec.args = args;
    if (cpus !== undefined) spec.cpus = cpus;
    return this.ask({ Spawn: spec }, SPAWN_TIMEOUT_MS);
  }

  restartMe() {
    return this.ask('RestartMe');
  }
}

module.exports = { ASK_TIMEOUT_MS, AskError, Messaging, SPAWN_TIMEOUT_MS, recipients, target };
