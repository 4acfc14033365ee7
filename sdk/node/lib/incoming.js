'use strict';
// Balanced connections (PROTOCOL.md section 12): the worker says Listening,
// takes offers (ConnectionTaken before the application sees the socket),
// reports ConnectionClosed, bounces what it cannot take.

const net = require('node:net');
const { EventEmitter } = require('node:events');
const { build } = require('./messages');

/** Connections taken and not yet handed to the application, at most. */
const CONNECTION_QUEUE = 128;

/**
 * The connections nanny's balancer gives this worker: an async iterable of
 * `net.Socket`s, and an EventEmitter (`connection`, `end`). Each socket has
 * `nannyListener` (the listener's name) and `nannyKind` (`Tcp` | `Unix`).
 */
class Incoming extends EventEmitter {
  constructor(worker, { queue = CONNECTION_QUEUE } = {}) {
    super();
    this.worker = worker;
    this.limit = queue;
    this.queue = [];
    this.waiters = [];
    this.ended = false;
    this.bouncedFull = false;
    this.open = 0;
    worker.link.send(build.listening(true));
  }

  /** Takes an offer, or returns false (the caller bounces it). */
  offer({ id, attempt, handle, listener, kind }) {
    if (this.ended || (this.listenerCount('connection') === 0 && this.waiters.length === 0 && this.queue.length >= this.limit)) {
      if (!this.ended) this.bouncedFull = true;
      return false;
    }
    // Taken before the application can touch the socket (section 12.2).
    this.worker.link.send(build.connectionTaken(id, attempt));
    const socket = new net.Socket({ handle, readable: true, writable: true });
    socket.nannyListener = listener;
    socket.nannyKind = kind;
    this.open += 1;
    socket.once('close', () => {
      this.open -= 1;
      this.worker.link.send(build.connectionClosed(id));
    });
    this.deliver(socket);
    return true;
  }

  deliver(socket) {
    if (this.listenerCount('connection') > 0) return this.handOut(() => this.emit('connection', socket));
    const waiter = this.waiters.shift();
    if (waiter) return this.handOut(() => waiter({ value: socket, done: false }));
    this.queue.push(socket);
  }

  /** Gives a connection to the application; says Listening again after a bounce for a full queue. */
  handOut(give) {
    give();
    if (this.bouncedFull && !this.ended) {
      this.bouncedFull = false;
      this.worker.link.send(build.listening(true));
    }
  }

  /** Connections open (taken, not yet closed). */
  get connections() {
    return this.open;
  }

  /** Stops taking connections: Listening{on: false}; what was taken is still handed out. */
  end() {
    if (this.ended) return;
    this.ended = true;
    this.worker.link.send(build.listening(false));
    for (const waiter of this.waiters.splice(0)) waiter({ value: undefined, done: true });
    this.emit('end');
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => {
        const socket = this.queue.shift();
        if (socket !== undefined) return Promise.resolve(this.handOut(() => {}) ?? { value: socket, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

module.exports = { CONNECTION_QUEUE, Incoming };
