'use strict';
// nanny-worker/lpm: load-process-manager's worker API over nanny's protocol,
// so that an LPM `worker.js` runs under nanny with one changed line:
// `require('nanny-worker/lpm')` instead of `require('load-process-manager')`.
// Only the worker side: the supervisor is nanny.

const { connect } = require('./index');

/** Events the LPM worker API gives meanings of its own; any other name is a broadcast. */
const LPM_EVENTS = new Set(['request', 'softKill', 'hardKill']);

/**
 * A listener registered without a callback: `.then(cb)` registers `cb` for
 * every firing of the event (as LPM's `on(name).then(cb)` does), not once.
 */
function registration(register) {
  return { then: (cb) => register(cb) };
}

/** LPM's worker object, on one nanny Worker. */
class LpmWorker {
  constructor() {
    this.softKillListeners = [];
  }

  /** The nanny Worker, connected on first use (requiring this module connects nothing). */
  get nanny() {
    return connect();
  }

  /**
   * Listens to `name`: `'request'` (an LPM-style Request), `'softKill'`
   * (`done` to call when finished; the worker then exits once its requests
   * are answered), `'hardKill'`, or a broadcast of that name (its decoded
   * payload, and the raw handle of the descriptor it carried, if any). Without `callback`, returns a thenable whose `then` registers it.
   */
  on(name, callback) {
    const register = (cb) => {
      this.listen(name, cb);
      return this;
    };
    return callback === undefined ? registration(register) : register(callback);
  }

  listen(name, cb) {
    if (typeof cb !== 'function') throw new TypeError(`on('${name}'): the callback is not a function`);
    if (name === 'request') this.nanny.on('request', (req) => cb(lpmRequest(req)));
    else if (name === 'softKill') this.addSoftKill(cb);
    else if (name === 'hardKill') this.nanny.onHardKill(() => cb());
    else this.nanny.on(name, (data, _payload, handle) => (handle === undefined ? cb(data) : cb(data, handle)));
  }

  addSoftKill(cb) {
    this.softKillListeners.push(cb);
    if (this.softKillListeners.length > 1) return;
    // At once when the soft kill begins; the exit waits for every `done` and for the requests in flight.
    this.nanny.onSoftKill(
      () => Promise.all(this.softKillListeners.map((listener) => new Promise((done) => listener(() => done())))),
      { early: true },
    );
  }

  /** Accepts requests (mandatory once at start). */
  ready() {
    this.nanny.ready();
    return this;
  }

  /** Accepts no new requests until the next `ready()`. */
  busy() {
    this.nanny.busy();
    return this;
  }

  /** Emits `event` with `payload` to the supervisor; `callback` runs once it is queued. */
  emit(event, payload, callback) {
    if (LPM_EVENTS.has(event)) throw new RangeError(`emit('${event}'): that name is the worker API's own`);
    this.nanny.emit(event, payload);
    if (typeof callback === 'function') setImmediate(callback);
    return this;
  }

  /** The requests in flight, as LPM Requests (a copy). */
  requests() {
    return this.nanny.requests().map(lpmRequest);
  }
}

/** Where a nanny Request keeps its LPM view (made once per attempt). */
const VIEW = Symbol('nanny-worker/lpm view');

/**
 * The LPM view of a nanny Request: `data`, `respond`, `id`, `createdAt` (ms
 * since the Unix epoch, not an hrtime), `hasStream`, `hasSocket`, `stream`,
 * `socket`, `ack`; and `fail(kind, message)` besides.
 */
class LpmRequest {
  constructor(req) {
    this.req = req;
  }

  get data() {
    return this.req.data;
  }

  get id() {
    return this.req.id;
  }

  get createdAt() {
    return this.req.createdAt;
  }

  get hasStream() {
    return this.req.hasStream;
  }

  get hasSocket() {
    return this.req.hasSocket;
  }

  get stream() {
    return this.req.stream;
  }

  get socket() {
    return this.req.socket;
  }

  respond(answer) {
    return this.req.respond(answer);
  }

  fail(kind, message) {
    return this.req.fail(kind, message);
  }

  ack() {
    return this.req.ack();
  }

  toJSON() {
    return this.req.toJSON();
  }
}

function lpmRequest(req) {
  return req[VIEW] ?? (req[VIEW] = new LpmRequest(req));
}

let lpmWorker = null;

module.exports = {
  /** The worker; it connects to nanny when first used. */
  get worker() {
    if (lpmWorker === null) lpmWorker = new LpmWorker();
    return lpmWorker;
  },
};
