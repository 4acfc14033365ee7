'use strict';
// A connected pair of Unix stream sockets without a native addon: a
// listener in Linux's abstract namespace (no file on disk), one connect,
// the accepted end matched to it by a 16-byte token.

const net = require('node:net');
const crypto = require('node:crypto');

let server = null;
let listening = null;
const waiting = new Map();

function listen() {
  if (listening !== null) return listening;
  const path = `\0nanny-worker-${process.pid}-${crypto.randomBytes(8).toString('hex')}`;
  server = net.createServer({ pauseOnConnect: true }, (far) => adopt(far));
  listening = new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve(path));
  });
  server.unref();
  return listening;
}

function adopt(far) {
  const readToken = () => {
    const token = far.read(16);
    if (token === null) return;
    far.removeListener('readable', readToken);
    const entry = waiting.get(token.toString('hex'));
    if (entry === undefined) return far.destroy();
    waiting.delete(token.toString('hex'));
    far.pause();
    entry.resolve(far);
  };
  far.on('readable', readToken);
  far.resume();
  readToken();
}

/** Resolves to `[near, far]`: two connected `net.Socket`s of one `SOCK_STREAM` pair. */
async function socketPair() {
  const path = await listen();
  const token = crypto.randomBytes(16);
  const far = new Promise((resolve, reject) => waiting.set(token.toString('hex'), { resolve, reject }));
  const near = net.connect(path);
  near.write(token);
  try {
    return [near, await far];
  } catch (e) {
    near.destroy();
    throw e;
  }
}

module.exports = { socketPair };
