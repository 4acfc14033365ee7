'use strict';
// nanny-worker/listen (listen.js) without a supervisor: its argument
// parsing, and its Servers installed in this process with a stand-in
// worker whose `incoming()` the test feeds with real sockets (accepted by a
// helper server bound before the patch). Real HTTP servers, real clients.
// That the preload is inert outside nanny runs in a child process. The
// whole path through nanny is tests/integration/node_listen.rs.

const test = require('node:test');
const assert = require('node:assert');
const { EventEmitter } = require('node:events');
const { execFileSync } = require('node:child_process');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const listen = require('../listen.js');

const PRELOAD = path.join(__dirname, '..', 'listen.js');

test('listen() arguments and listener names', () => {
  const cb = () => {};
  assert.deepStrictEqual(listen.parseListenArgs([8080, cb]), { port: 8080, host: undefined, callback: cb });
  assert.deepStrictEqual(listen.parseListenArgs(['8080', '127.0.0.1']), { port: 8080, host: '127.0.0.1', callback: undefined });
  assert.deepStrictEqual(listen.parseListenArgs([]), { port: 0, host: undefined, callback: undefined });
  assert.deepStrictEqual(listen.parseListenArgs(['/run/web.sock']), { path: '/run/web.sock', callback: undefined });
  assert.strictEqual(listen.parseListenArgs([{ port: 3000, host: '::1' }]).port, 3000);
  assert.strictEqual(listen.parseListenArgs([{ path: '/x.sock' }]).port, undefined);
  assert.deepStrictEqual(listen.parseListenArgs([{ fd: 3 }]), { passthrough: true });
  assert.deepStrictEqual(listen.parseListenArgs([{ handle: {} }]), { passthrough: true });
  assert.deepStrictEqual(listen.nameTarget('tcp:0.0.0.0:8080', 'Tcp'), { port: 8080 });
  assert.deepStrictEqual(listen.nameTarget('unix:/run/web.sock', 'Unix'), { path: '/run/web.sock' });
  assert.deepStrictEqual(listen.nameTarget('web', 'Tcp'), {});
});

test('outside nanny the preload is inert: listen(0) binds a real port', () => {
  const env = { ...process.env };
  delete env.NANNY_FD;
  const script = "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });";
  const out = execFileSync(process.execPath, ['-r', PRELOAD, '-e', script], { env, encoding: 'utf8' });
  assert.ok(Number(out.trim()) > 0, out);
});

// ---- Servers with a stand-in worker ----

/** A helper server bound before the patch: it accepts the sockets the tests offer. */
const acceptor = net.createServer();
const bound = new Promise((resolve) => acceptor.listen(0, '127.0.0.1', resolve));
acceptor.unref();

class StandInIncoming extends EventEmitter {
  end() {
    if (this.ended) return;
    this.ended = true;
    this.emit('end');
  }
}

const worker = {
  readies: 0,
  incomings: [],
  ready() {
    this.readies += 1;
  },
  incoming() {
    const incoming = new StandInIncoming();
    this.incomings.push(incoming);
    return incoming;
  },
};

let servers = null;

/** Installs the patch once the helper server is bound. */
async function installed() {
  await bound;
  if (servers === null) {
    servers = new listen.Servers(worker);
    listen.install(servers);
  }
  return servers;
}

/** Offers a connection from `listener` as nanny would; resolves to the client's end. */
async function offer(listener) {
  const accepted = new Promise((resolve) => acceptor.once('connection', resolve));
  const client = net.connect(acceptor.address().port, '127.0.0.1');
  const socket = await accepted;
  socket.nannyListener = listener;
  socket.nannyKind = 'Tcp';
  worker.incomings.at(-1).emit('connection', socket);
  return client;
}

/** Everything the client's end reads until `text` has come (or the end, with `text` null). */
function readUntil(client, text) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const done = () => {
      client.removeListener('data', onData);
      resolve(seen);
    };
    const onData = (chunk) => {
      seen += chunk;
      if (text !== null && seen.includes(text)) done();
    };
    client.on('data', onData);
    client.once('error', reject);
    client.once('end', () => (text === null ? done() : reject(new Error(`ended before ${text}: ${seen}`))));
  });
}

/** An HTTP server answering `name` on `/`, and on `/slow` "started", then "finished" at `gate.open()`. */
function httpServer(name, gate) {
  return http.createServer((req, res) => {
    if (req.url !== '/slow') return res.end(`${name} here`);
    res.write('started\n');
    gate.open = () => res.end('finished');
  });
}

test('listen() binds nothing, says listening on the next tick, routes by port, then to the first server', { timeout: 20000 }, async () => {
  await installed();
  const a = httpServer('a', {});
  const b = httpServer('b', {});
  let listenedSync = false;
  a.listen(8080, () => (listenedSync = true));
  assert.strictEqual(listenedSync, false, "'listening' comes on a later tick");
  b.listen({ port: 9090, host: '127.0.0.1' });
  await Promise.all([EventEmitter.once(a, 'listening'), EventEmitter.once(b, 'listening')]);
  assert.ok(listenedSync && a.listening && b.listening);
  assert.strictEqual(worker.readies, 1, 'Ready once, after the first server listens');
  assert.strictEqual(worker.incomings.length, 1);
  assert.deepStrictEqual(a.address(), { address: '::', family: 'IPv6', port: 8080 });
  assert.deepStrictEqual(b.address(), { address: '127.0.0.1', family: 'IPv4', port: 9090 });
  assert.throws(() => a.listen(8080), { code: 'ERR_SERVER_ALREADY_LISTEN' });
  const ask = async (listener) => {
    const client = await offer(listener);
    client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    return readUntil(client, null);
  };
  assert.match(await ask('tcp:0.0.0.0:9090'), /b here$/);
  assert.match(await ask('tcp:0.0.0.0:8080'), /a here$/);
  assert.match(await ask('web'), /a here$/);
  assert.match(await ask('tcp:0.0.0.0:7070'), /a here$/);
  await new Promise((resolve) => a.close(resolve));
  assert.strictEqual(worker.incomings[0].ended, undefined, 'b still listens');
  assert.match(await ask('tcp:0.0.0.0:8080'), /b here$/);
  await new Promise((resolve) => b.close(resolve));
  assert.strictEqual(worker.incomings[0].ended, true, 'no server open: the worker stops listening');
  assert.strictEqual(a.address(), null);
});

test("close() emits 'close' once the server's open connections have closed", { timeout: 20000 }, async () => {
  await installed();
  const gate = {};
  const server = httpServer('c', gate).listen(8080);
  await EventEmitter.once(server, 'listening');
  assert.strictEqual(worker.incomings.length, 2, 'listening again takes a new stream');
  const client = await offer('web');
  client.write('GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await readUntil(client, 'started\n');
  assert.strictEqual(await new Promise((resolve) => server.getConnections((e, n) => resolve(n))), 1);
  server.maxConnections = 1;
  const refused = await offer('web');
  assert.strictEqual(await readUntil(refused, null), '', 'past maxConnections a connection is closed');
  let closed = false;
  const closing = new Promise((resolve, reject) =>
    server.close((err) => {
      closed = true;
      return err ? reject(err) : resolve();
    }),
  );
  assert.strictEqual(server.listening, false);
  await new Promise((resolve) => setImmediate(resolve));
  assert.strictEqual(closed, false, 'a response is in flight');
  const rest = readUntil(client, null);
  gate.open();
  assert.match(await rest, /finished/);
  await closing;
  await assert.rejects(new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))), { code: 'ERR_SERVER_NOT_RUNNING' });
});

test('a drain closes idle keep-alive connections, lets a response finish, then closes its connection', { timeout: 20000 }, async () => {
  const s = await installed();
  const gate = {};
  const server = httpServer('d', gate);
  server.keepAliveTimeout = 0; // no timer closes a keep-alive connection: only the drain does
  server.listen(8080);
  await EventEmitter.once(server, 'listening');
  const idle = await offer('web');
  idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await readUntil(idle, 'd here');
  const busy = await offer('web');
  busy.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  await readUntil(busy, 'started\n');
  const idleEnd = readUntil(idle, null);
  const busyRest = readUntil(busy, null);
  worker.incomings.at(-1).end(); // what Drain or a soft kill does to the stream
  await idleEnd;
  assert.strictEqual(server.listening, false, 'the drain closed the server');
  let allClosed = false;
  const closing = s.closed().then(() => (allClosed = true)); // the soft kill's hook
  await new Promise((resolve) => setImmediate(resolve));
  assert.strictEqual(allClosed, false, 'a response is in flight');
  gate.open();
  assert.match(await busyRest, /finished/);
  await closing;
  assert.strictEqual(server.listening, false);
});
