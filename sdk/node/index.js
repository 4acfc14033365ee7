'use strict';
// nanny-worker: the Node.js SDK of nanny's worker protocol (version 4).

const { Worker, EXIT_DISCONNECTED, EXIT_PROTOCOL, PROTOCOL_VERSION, hostPid } = require('./lib/worker');
const { AlreadyAnsweredError, Request } = require('./lib/request');
const { AskError } = require('./lib/messaging');
const { ProtocolError, pack, unpack } = require('./lib/codec');

let worker = null;

/** True in a process nanny started as a protocol worker. */
function isWorker() {
  return worker !== null || process.env.NANNY_FD !== undefined;
}

/**
 * Connects to the supervisor (the socket in `NANNY_FD`), sends the hello and
 * returns the worker. Idempotent: later calls return the same worker (their
 * options are ignored). Throws if this process is no nanny worker.
 */
function connect(options) {
  if (worker === null) worker = new Worker(options);
  return worker;
}

module.exports = {
  AlreadyAnsweredError,
  AskError,
  EXIT_DISCONNECTED,
  EXIT_PROTOCOL,
  PROTOCOL_VERSION,
  ProtocolError,
  Request,
  Worker,
  connect,
  hostPid,
  isWorker,
  pack,
  unpack,
};
