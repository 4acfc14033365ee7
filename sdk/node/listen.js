'use strict';
/**
 * nanny-worker/listen: a preload that puts an unmodified Node.js server
 * behind nanny's balancer.
 *
 *   node -r nanny-worker/listen app.js
 *
 * In a worker of a pool with `fd_channel = "node"` and a balanced listener
 * (worker-sdk/PROTOCOL.md sections 11.6 and 12), it connects the SDK worker
 * and patches `net.Server.prototype` (so `net`, `http`, `https`, `tls` and
 * every framework built on them): `listen()` binds nothing; the server gets
 * the connections nanny balances to this worker, each as
 * `server.emit('connection', socket)`, as a real accept would give them.
 *
 * * **Which server gets a connection.** An offer names the nanny listener
 *   that accepted it. The connection goes to the open server whose port is
 *   the port at the end of that name (the default name of
 *   `[[listener]] tcp = "0.0.0.0:8080"` is `tcp:0.0.0.0:8080`, so
 *   `listen(8080)` takes its connections), or, for a Unix listener, whose
 *   path is the path in the name; otherwise to the server that started
 *   listening first. A one-server app therefore takes every listener's
 *   connections whatever port it asks for.
 * * **Readiness.** The worker says `Ready` once the first server is
 *   listening (`'listening'` is emitted on the next tick), not before.
 * * **`address()`** answers `{address, family, port}` with the host and
 *   port asked for (a path for a path), `listening` is true, `close()`
 *   stops the server's share of connections and emits `'close'` once its
 *   open connections have closed, as Node does. When no server is open,
 *   the worker stops listening (offers go to other workers).
 * * **Stopping.** On nanny's `Drain` or soft kill (`SoftKill`, `Exit`,
 *   SIGTERM) every server is closed gracefully: idle HTTP keep-alive
 *   connections are closed, responses in flight finish and their
 *   connections close after them; the worker exits 0 once every server
 *   has emitted `'close'`.
 * * **Left alone.** `listen({ fd })`, `listen({ handle })` and
 *   `listen(handle)` bind as usual. Outside nanny (no `NANNY_FD`, a plain
 *   pool), the preload does nothing at all. In a pool without the Node fd
 *   channel it warns and lets `listen()` bind, and says `Ready` when the
 *   first server listens.
 */

const net = require('node:net');

/** The per-server state of a server this preload serves, under this key. */
const STATE = Symbol('nanny.listen');
/** An HTTP(S) server's responses not yet finished, under this key. */
const RESPONSES = Symbol('nanny.listen.responses');

/** What `listen(...)` asked for: `{ port, host, path, signal, callback }` (a backlog is ignored), or `{ passthrough }` for a handle or fd. */
function parseListenArgs(args) {
  const list = [...args];
  const callback = typeof list[list.length - 1] === 'function' ? list.pop() : undefined;
  const [first, second] = list;
  if (first !== null && typeof first === 'object') {
    if (first._handle !== undefined || typeof first.getsockname === 'function' || first.fd !== undefined || first.handle !== undefined) {
      return { passthrough: true };
    }
    const port = first.port === undefined ? (first.path === undefined ? 0 : undefined) : Number(first.port);
    return { port, host: first.host, path: first.path, signal: first.signal, callback };
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { path: first, callback };
  const port = first === undefined || first === null ? 0 : Number(first);
  return { port, host: typeof second === 'string' ? second : undefined, callback };
}

/** The port or path a listener's name ends with (`tcp:0.0.0.0:8080` → 8080, `unix:/run/web.sock` → the path). */
function nameTarget(name, kind) {
  if (typeof name !== 'string') return {};
  if (kind === 'Unix' && name.startsWith('unix:')) return { path: name.slice('unix:'.length) };
  const m = /:(\d+)$/.exec(name);
  return m ? { port: Number(m[1]) } : {};
}

/** An `Error` like Node's own `ERR_SERVER_NOT_RUNNING`. */
function notRunning() {
  const e = new Error('Server is not running.');
  e.code = 'ERR_SERVER_NOT_RUNNING';
  return e;
}

/** The servers this worker serves, and its one stream of balanced connections. */
class Servers {
  constructor(worker) {
    this.worker = worker;
    this.open = [];
    this.closing = new Set();
    this.incoming = null;
    this.draining = false;
    this.ready = false;
    this.doneClosing = new Set();
  }

  /** `server.listen(...)` of a server this preload serves. */
  listen(server, spec) {
    if (server[STATE]?.listening) {
      const e = new Error('Listen method has been called more than once without closing.');
      e.code = 'ERR_SERVER_ALREADY_LISTEN';
      throw e;
    }
    server[STATE] = { listening: true, spec };
    trackResponses(server);
    if (spec.callback) server.once('listening', spec.callback);
    if (spec.signal) this.abortOn(server, spec.signal);
    this.open.push(server);
    if (this.incoming === null && !this.draining) this.startIncoming();
    process.nextTick(() => {
      if (!server[STATE].listening) return;
      server.emit('listening');
      if (!this.ready) {
        this.ready = true;
        this.worker.ready();
      }
    });
    return server;
  }

  abortOn(server, signal) {
    const stop = () => server.close();
    if (signal.aborted) return process.nextTick(stop);
    signal.addEventListener('abort', stop, { once: true });
  }

  startIncoming() {
    const incoming = this.worker.incoming();
    this.incoming = incoming;
    incoming.on('connection', (socket) => this.route(socket));
    incoming.once('end', () => {
      if (this.incoming === incoming) this.incoming = null;
      if (incoming.endedByUs) return;
      this.draining = true;
      this.closeAll();
    });
  }

  /** Gives a balanced connection to its server (see the module doc), or closes it. */
  route(socket) {
    const target = nameTarget(socket.nannyListener, socket.nannyKind);
    const server =
      this.open.find((s) => (target.port !== undefined ? s[STATE].spec.port === target.port : target.path !== undefined && s[STATE].spec.path === target.path)) ??
      this.open[0];
    if (server === undefined) return socket.destroy();
    if (server.maxConnections > 0 && server._connections >= server.maxConnections) return socket.destroy();
    socket.allowHalfOpen = Boolean(server.allowHalfOpen);
    if (server.pauseOnConnect) socket.pause();
    socket.server = server;
    socket._server = server;
    server._connections += 1;
    server.emit('connection', socket);
  }

  /** `server.close(cb)` of a server this preload serves. */
  close(server, cb) {
    const state = server[STATE];
    if (typeof cb === 'function') server.once('close', state.listening ? cb : () => cb(notRunning()));
    if (state.listening) {
      state.listening = false;
      this.open = this.open.filter((s) => s !== server);
      this.closing.add(server);
      server.once('close', () => {
        this.closing.delete(server);
        this.checkClosed();
      });
      settleHttp(server);
      if (this.open.length === 0 && this.incoming !== null) {
        this.incoming.endedByUs = true;
        this.incoming.end();
      }
    }
    server._emitCloseIfDrained();
    return server;
  }

  /** Closes every open server (a drain or a soft kill). */
  closeAll() {
    for (const server of [...this.open]) server.close();
  }

  /** Resolves once every server is closed (the soft kill's hook). */
  closed() {
    this.draining = true;
    this.closeAll();
    if (this.closing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.doneClosing.add(resolve));
  }

  checkClosed() {
    if (this.closing.size > 0 || this.open.length > 0) return;
    for (const resolve of this.doneClosing) resolve();
    this.doneClosing.clear();
  }
}

/** Keeps an HTTP(S) server's unfinished responses (once per server; a no-op for other servers). */
function trackResponses(server) {
  if (server[RESPONSES] !== undefined || typeof server.closeIdleConnections !== 'function') return;
  const responses = new Set();
  server[RESPONSES] = responses;
  server.on('request', (req, res) => {
    if (server[STATE]?.listening === false) return closeAfter(res);
    responses.add(res);
    const done = () => responses.delete(res);
    res.once('finish', done);
    res.once('close', done);
  });
}

/** The connection of `res` closes once `res` has finished. */
function closeAfter(res) {
  const socket = res.socket; // http detaches it when the response finishes
  if (!res.headersSent) res.shouldKeepAlive = false;
  res.once('finish', () => socket?.end());
}

/**
 * A closing HTTP(S) server: its responses in flight finish, then their
 * connections close, as do those of requests still to come on them
 * (`http.Server#close` itself closes the idle ones).
 */
function settleHttp(server) {
  for (const res of server[RESPONSES] ?? []) closeAfter(res);
}

/** Patches `net.Server.prototype` so that `servers` serves what listens. */
function install(servers) {
  const proto = net.Server.prototype;
  const original = {
    listen: proto.listen,
    close: proto.close,
    address: proto.address,
    emitCloseIfDrained: proto._emitCloseIfDrained,
    listening: Object.getOwnPropertyDescriptor(proto, 'listening'),
  };
  proto.listen = function listen(...args) {
    const spec = parseListenArgs(args);
    if (spec.passthrough) return original.listen.apply(this, args);
    return servers.listen(this, spec);
  };
  proto.close = function close(cb) {
    if (this[STATE] === undefined) return original.close.call(this, cb);
    return servers.close(this, cb);
  };
  proto.address = function address() {
    const state = this[STATE];
    if (state === undefined) return original.address.call(this);
    if (!state.listening) return null;
    if (state.spec.path !== undefined) return state.spec.path;
    const host = state.spec.host ?? '::';
    return { address: host, family: net.isIPv4(host) ? 'IPv4' : 'IPv6', port: state.spec.port };
  };
  proto._emitCloseIfDrained = function emitCloseIfDrained() {
    if (this[STATE]?.listening) return;
    return original.emitCloseIfDrained.call(this);
  };
  Object.defineProperty(proto, 'listening', {
    get() {
      return this[STATE] === undefined ? original.listening.get.call(this) : this[STATE].listening;
    },
    configurable: true,
    enumerable: original.listening.enumerable,
  });
}

/** Without the Node fd channel: `listen()` binds, and the first `'listening'` says Ready. */
function readyOnFirstListen(worker) {
  process.emitWarning('nanny-worker/listen: this pool has no Node fd channel (fd_channel = "node"): servers bind their own ports');
  const proto = net.Server.prototype;
  const listen = proto.listen;
  let ready = false;
  proto.listen = function readyListen(...args) {
    if (!ready) {
      this.once('listening', () => {
        if (ready) return;
        ready = true;
        worker.ready();
      });
    }
    return listen.apply(this, args);
  };
}

/** Sets the preload up in a nanny worker; does nothing elsewhere. Returns the Servers, or null. */
function main() {
  if (process.env.NANNY_FD === undefined) return null;
  const worker = require('./index.js').connect();
  if (worker.channel === null) {
    readyOnFirstListen(worker);
    return null;
  }
  const servers = new Servers(worker);
  install(servers);
  worker.onSoftKill(() => servers.closed(), { early: true });
  return servers;
}

/** The preload's Servers in this process (null outside nanny); the rest is exported for tests. */
module.exports = { Servers, install, main, nameTarget, parseListenArgs, servers: main() };
