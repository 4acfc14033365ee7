'use strict';
// A connected pair of Unix stream sockets without a native addon: a
// listener in Linux's abstract namespace (no file on disk), one connect,
// the accepted end matched to it by a 16-byte token the connecting end
// writes.
//
// The connecting end ("far") is the one to hand to another process: it is
// paused before it connects and never read from here, so every byte the
// accepted end ("near") writes stays in the kernel for whoever reads `far`
// next. (A socket libuv once read from may hold bytes in this process that
// the other process never sees.)

const net = require('node:net');
const crypto = require('node:crypto');

const TOKEN_LEN = 16;

let server = null;
let listening = null;
const waiting = new Map();

/** The listener keeps the event loop alive only while a pair waits for its accept. */
function wait(key, entry) {
  waiting.set(key, entry);
  server.ref();
}

function settle(key) {
  waiting.delete(key);
  if (waiting.size === 0) server.unref();
}

function listen() {
  if (listening !== null) return listening;
  const path = `\0nanny-worker-${process.pid}-${crypto.randomBytes(8).toString('hex')}`;
  server = net.createServer({ pauseOnConnect: true }, adopt);
  listening = new Promise((resolve, reject) => {
    server.once('error', (e) => {
      listening = null;
      reject(e);
    });
    server.listen(path, () => resolve(path));
  });
  server.unref();
  return listening;
}

/** An accepted end: its first bytes are the token of the connect it belongs to. */
function adopt(near) {
  const readToken = () => {
    const token = near.read(TOKEN_LEN);
    if (token === null) return;
    near.removeListener('readable', readToken);
    near.removeListener('error', drop);
    const key = token.toString('hex');
    const entry = waiting.get(key);
    if (entry === undefined) return near.destroy();
    settle(key);
    entry.resolve(near);
  };
  const drop = () => near.destroy();
  near.on('error', drop);
  near.on('readable', readToken);
}

/** The connecting end: paused before it connects, so nothing is ever read from it here. */
function connectFar(path, token) {
  const far = new net.Socket();
  far.pause();
  return new Promise((resolve, reject) => {
    far.once('error', reject);
    far.connect(path);
    far.write(token, (e) => {
      far.removeListener('error', reject);
      if (e) reject(e);
      else resolve(far);
    });
  }).catch((e) => {
    far.destroy();
    throw e;
  });
}

/**
 * Resolves to `[near, far]`: two connected `net.Socket`s of one
 * `SOCK_STREAM` pair. `far` is paused and has never been read from (hand
 * it to another process with `process.send(msg, far)`, or `resume()` it to
 * read it here); `near` is this process's end.
 */
async function socketPair() {
  const path = await listen();
  const token = crypto.randomBytes(TOKEN_LEN);
  const key = token.toString('hex');
  const accepted = new Promise((resolve) => wait(key, { resolve }));
  let far;
  try {
    far = await connectFar(path, token);
  } catch (e) {
    settle(key);
    throw e;
  }
  return [await accepted, far];
}

module.exports = { socketPair };
