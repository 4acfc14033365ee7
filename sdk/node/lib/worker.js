'use strict';
// The worker: hello, dispatch of the supervisor's messages, Ready/Busy,
// broadcasts and emits, and the ways a worker ends (section 7, 13).

const fs = require('node:fs');
const { EventEmitter } = require('node:events');
const { DEFAULT_MAX_FRAME_LEN, ENVELOPE, ProtocolError, pack, unpackPayload } = require('./codec');
const { Link } = require('./link');
const { build } = require('./messages');
const { Answers } = require('./answers');
const { Pulse } = require('./heartbeat');
const { Messaging } = require('./messaging');
const { Request } = require('./request');
const { Stopping } = require('./stopping');
const { openChannel } = require('./channel');

/** The protocol version this SDK speaks. */
const PROTOCOL_VERSION = 4;
/** The exit code after end of file (or a broken pipe) on the framed socket. */
const EXIT_DISCONNECTED = 1;
/** The exit code after a protocol error (sysexits' EX_PROTOCOL). */
const EXIT_PROTOCOL = 76;
const VERSION = require('../package.json').version;

/** Events that are the SDK's own: a broadcast of that name goes to `broadcast` listeners only. */
const RESERVED = new Set(['request', 'broadcast', 'message', 'disconnect', 'protocolError', 'drain', 'error', 'newListener', 'removeListener']);
const dispatch = EventEmitter.prototype.emit;

/** The host's pid of this process: the name of /proc/self (section 1), else getpid(). */
function hostPid() {
  try {
    const pid = Number(fs.readlinkSync('/proc/self'));
    if (Number.isInteger(pid) && pid > 0) return pid;
  } catch {
    // no /proc: fall back
  }
  return process.pid;
}

/** What the environment says (section 1); the fd variables are removed from `process.env`. */
function readEnv(env = process.env) {
  if (env.NANNY_FD === undefined) throw new Error('not a nanny worker: NANNY_FD is not set');
  const num = (v, d) => (v === undefined || v === '' ? d : Number(v));
  const out = {
    fd: Number(env.NANNY_FD),
    workerId: num(env.NANNY_WORKER_ID, undefined),
    pool: env.NANNY_POOL,
    name: env.NANNY_WORKER_NAME,
    logicalId: num(env.PROCESS_LOGICAL_ID, undefined),
    pulseMs: num(env.NANNY_PULSE_MS, 1000),
    maxFrameLen: num(env.NANNY_MAX_FRAME_LEN, DEFAULT_MAX_FRAME_LEN),
    seqpacketFd: num(env.NANNY_FD_CHANNEL, undefined),
  };
  // Children we start must not take themselves for workers (section 1).
  delete env.NANNY_FD;
  delete env.NANNY_FD_CHANNEL;
  return out;
}

/**
 * A nanny worker. `emit(event, payload)` sends an event to the supervisor;
 * `on(name, fn)` listens to the SDK's events (`request`, `broadcast`,
 * `message`, `disconnect`, `protocolError`, `drain`) and to broadcasts by name.
 */
class Worker extends EventEmitter {
  constructor(options = {}) {
    super();
    const env = readEnv(options.env);
    this.id = env.workerId;
    this.pool = env.pool;
    this.name = env.name;
    this.logicalId = env.logicalId;
    this.pid = hostPid();
    this.maxFrameLen = env.maxFrameLen;
    this.pulseMs = env.pulseMs;
    this.supervisor = null;
    this.startedUs = process.hrtime.bigint() / 1000n;
    if (env.seqpacketFd !== undefined) closeQuietly(env.seqpacketFd);
    this.link = new Link(env.fd, env.maxFrameLen);
    this.answers = new Answers(this);
    this.messaging = new Messaging(this);
    this.stopping = new Stopping(this);
    this.channel = openChannel(this);
    this.agent = options.agent ?? `nanny-worker-node/${VERSION} node/${process.version}`;
    this.capabilities = ['messaging', 'exit', ...(this.channel ? ['fd-channel', 'connections'] : []), ...(options.capabilities ?? [])];
    this.hello = new Promise((resolve) => (this.resolveHello = resolve));
    this.link.send(build.hello(PROTOCOL_VERSION, this.pid, this.agent, this.capabilities));
    /** The `request` listeners, cached until one is added or removed. */
    this.requestHandlers = null;
    const forget = (name) => name === 'request' && (this.requestHandlers = null);
    this.on('newListener', forget);
    this.on('removeListener', forget);
    this.link.on('message', (m) => this.onMessage(m));
    this.link.on('protocolError', (e) => this.protocolError(e));
    this.link.on('end', () => this.disconnected());
    process.on('SIGTERM', () => this.stopping.begin(0, 'SIGTERM'));
  }

  /** Largest payload either way: `max_frame_len - 256`. */
  get maxPayloadLen() {
    return this.maxFrameLen - ENVELOPE;
  }

  /** Accepts requests (at start, and to end `busy()`). */
  ready() {
    this.link.send(build.ready());
    return this;
  }

  /** Accepts no new requests until the next `ready()`. */
  busy() {
    this.link.send(build.busy());
    return this;
  }

  /** The attempts in flight (a copy of the table: the Request objects themselves). */
  requests() {
    return [...this.answers.inflight.values()];
  }

  /** Sends event `event` with `payload` (MessagePack) to the supervisor; true once queued. */
  emit(event, payload) {
    return this.emitRaw(event, pack(payload === undefined ? null : payload));
  }

  /** `emit` with payload bytes as they are. */
  emitRaw(event, bytes) {
    if (Buffer.byteLength(event) + bytes.length > this.maxPayloadLen) {
      throw new RangeError(`event ${event}: payload larger than max_payload_len ${this.maxPayloadLen}`);
    }
    return this.link.send(build.emit(String(event), bytes));
  }

  /** Runs `hook` on a soft kill (SoftKill, Exit, SIGTERM); see Stopping. */
  onSoftKill(hook, options) {
    this.stopping.onSoft(hook, options);
    return this;
  }

  /** Runs `hook` on a HardKill (best effort: SIGKILL follows at once). */
  onHardKill(hook) {
    this.stopping.onHard(hook);
    return this;
  }

  /** Ends the worker: sends `Closing{code}`, flushes, exits with `code`. */
  close(code = 0) {
    return this.stopping.close(code);
  }

  /** Resolves once the worker stops (soft kill, drain or exit begun). */
  draining() {
    return this.stopping.started;
  }

  /** Publishes `data` to `'public'`, `{group}`, `{id}` or `{name}` (section 14). */
  publish(to, data) {
    return this.messaging.publish(to, data);
  }

  /** Sends one confirmation of `identifier` (14.3). */
  confirm(identifier) {
    return this.messaging.confirm(identifier);
  }

  /** Calls `fn(metas)` each time `n` confirmations of `identifier` arrived. */
  onConfirmation(n, identifier, fn) {
    this.messaging.onConfirmation(n, identifier, fn);
    return this;
  }

  /** Resolves to `{supervisor_pid, pools: [{name, workers: [{id, name, pid}]}]}`. */
  clusterInfo() {
    return this.messaging.query('ClusterInfo');
  }

  /** Resolves to this worker's counters (14.5). */
  stats() {
    return this.messaging.query('Stats');
  }

  /** Asks the supervisor's handler of `event`; resolves to its answer (rejects with an AskError). */
  ask(event, payload) {
    return this.messaging.askEvent(event, payload);
  }

  /** Asks the supervisor to end a member: a pid, `{pid}`, `{id}` or `{name}`; `code` its exit code. */
  kill(target, code = 0) {
    return this.messaging.kill(target, code);
  }

  /** Asks for `count` new workers of `pool`; resolves to `[{id, name}]`. */
  spawn(pool, count, options) {
    return this.messaging.spawn(pool, count, options);
  }

  /** Asks for a make-before-break restart of this worker. */
  restartMe() {
    return this.messaging.restartMe();
  }

  /** A stream of balanced connections (section 12); needs the Node channel. */
  incoming(options) {
    if (this.channel === null) throw new Error('no fd channel: balanced connections need the pool setting fd_channel = "node"');
    return this.channel.incoming(options);
  }

  /** Calls this worker's own listeners of `name` (what EventEmitter's `emit` does elsewhere). */
  fire(name, ...args) {
    return dispatch.call(this, name, ...args);
  }

  onMessage(m) {
    if (this.supervisor === null && m.type !== 'Hello') return this.protocolError(new ProtocolError(`first frame is ${m.type}, not Hello`));
    const handler = this.handlers[m.type];
    handler.call(this, m);
  }

  onRequest(frame, attachment) {
    if (frame.attachment !== undefined && attachment === undefined && this.channel === null) {
      const req = new Request(this.answers, frame, null);
      this.answers.add(req);
      return req.fail('attachment', 'this worker has no fd channel');
    }
    const req = new Request(this.answers, frame, attachment ?? null);
    this.answers.add(req);
    this.runHandlers(req);
  }

  runHandlers(req) {
    const handlers = this.requestHandlers ?? (this.requestHandlers = this.listeners('request'));
    if (handlers.length === 0) return req.fail('dropped', 'no request handler');
    for (const handler of handlers) {
      let value;
      try {
        value = handler(req);
      } catch (e) {
        this.handlerFailed(req, e);
        continue;
      }
      if (value === undefined) continue;
      if (typeof value?.then === 'function') {
        Promise.resolve(value).then(
          (v) => v !== undefined && !req.answered && req.respond(v),
          (e) => this.handlerFailed(req, e),
        );
      } else if (!req.answered) {
        req.respond(value);
      }
    }
  }

  handlerFailed(req, e) {
    if (!req.answered) return req.fail('handler', e instanceof Error ? e.message : String(e));
    process.emitWarning(`request handler failed after answering: ${e?.stack ?? e}`);
  }

  /** A broadcast; `handle` its descriptor (a raw libuv handle), closed if nobody listens. */
  onBroadcast(event, payload, handle) {
    let data;
    try {
      data = unpackPayload(payload);
    } catch {
      data = undefined;
    }
    const heard = this.fire('broadcast', event, data, payload, handle);
    const named = !RESERVED.has(event) && this.fire(event, data, payload, handle);
    if (handle && !heard && !named) handle.close?.();
  }

  /** Called when in-flight work may have finished. */
  checkIdle() {
    this.stopping.check();
  }

  protocolError(error) {
    process.stderr.write(`nanny-worker: protocol error: ${error.message}\n`);
    this.fire('protocolError', error);
    this.link.close();
    process.exit(EXIT_PROTOCOL);
  }

  disconnected() {
    if (this.stopping.hard) return;
    this.answers.abortAll(new Error('the supervisor is gone'));
    this.fire('disconnect');
    process.exit(EXIT_DISCONNECTED);
  }
}

Worker.prototype.handlers = {
  Hello(m) {
    if (this.supervisor !== null) return this.protocolError(new ProtocolError('a second Hello'));
    const min = m.minVersion ?? m.version;
    if (PROTOCOL_VERSION < min || PROTOCOL_VERSION > m.version) {
      return this.protocolError(new ProtocolError(`version ${PROTOCOL_VERSION} is not in the supervisor's ${min}..=${m.version}`));
    }
    if (this.id !== undefined && m.workerId !== this.id) {
      return this.protocolError(new ProtocolError(`hello worker_id ${m.workerId} is not NANNY_WORKER_ID ${this.id}`));
    }
    this.supervisor = m;
    this.id = m.workerId;
    this.maxFrameLen = m.maxFrameLen;
    this.pulseMs = m.pulseMs;
    this.link.setMaxFrameLen(m.maxFrameLen);
    this.pulse = new Pulse(m.pulseMs, (hb) => this.link.send(hb), () => ({ inFlight: this.answers.inflight.size, served: this.answers.served }), this.startedUs);
    this.pulse.start();
    this.resolveHello(m);
  },
  Request(m) {
    if (this.channel !== null && m.attachment !== undefined) return this.channel.splitFrame(m);
    this.onRequest(m);
  },
  Cancel(m) {
    const req = this.answers.get(m.id, m.attempt);
    if (req) this.answers.cancel(req, new Error('cancelled'));
    else if (this.channel !== null) this.channel.cancelled(m);
  },
  Broadcast(m) {
    this.onBroadcast(m.event, m.payload);
  },
  SoftKill() {
    this.stopping.begin(0, 'SoftKill');
  },
  Exit(m) {
    this.stopping.begin(m.code, 'Exit');
  },
  Drain() {
    this.fire('drain');
    this.channel?.drain();
  },
  HardKill() {
    this.stopping.hardKill();
  },
  Message(m) {
    this.messaging.onMessage(m);
  },
  QueryAnswer(m) {
    this.messaging.onQueryAnswer(m);
  },
  Answer(m) {
    this.messaging.onAnswer(m);
  },
};

function closeQuietly(fd) {
  try {
    fs.closeSync(fd);
  } catch {
    // not ours to worry about
  }
}

module.exports = { EXIT_DISCONNECTED, EXIT_PROTOCOL, PROTOCOL_VERSION, Worker, hostPid, readEnv };
