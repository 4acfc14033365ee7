// Types of nanny-worker/lpm: load-process-manager's worker API over nanny.

import { Readable } from 'node:stream';
import { Socket } from 'node:net';
import { NativeHandle } from './index';

/** A request as LPM's worker API shows it. */
export interface LpmRequest {
  /** The payload, decoded from MessagePack. */
  readonly data: any;
  /** Answers the request (once). */
  respond(answer?: unknown): boolean;
  /** Answers with a remote error (nanny's, beyond LPM). */
  fail(kind: string, message?: string): boolean;
  /** Tells the supervisor the request was taken. */
  ack(): void;
  /** The request id, a UUID string. */
  readonly id: string;
  /** When the request was enqueued: ms since the Unix epoch (LPM gave an hrtime). */
  readonly createdAt: number;
  /** A byte stream is attached. */
  readonly hasStream: boolean;
  /** A connection is attached (Tcp, Unix or Fd). */
  readonly hasSocket: boolean;
  /** The attached stream, taken on first read (needs the pool's `fd_channel = "node"`); null if none. */
  readonly stream: Readable | null;
  /** The attached connection, taken on first read (needs the pool's `fd_channel = "node"`); null if none. */
  readonly socket: Socket | null;
}

/** `on(name)` without a callback: `then(cb)` registers `cb` for every firing. */
export interface Registration<A extends unknown[]> {
  then(cb: (...args: A) => unknown): LpmWorker;
}

export interface LpmWorker {
  on(event: 'request', callback: (req: LpmRequest) => unknown): LpmWorker;
  on(event: 'request'): Registration<[LpmRequest]>;
  /** `done` must be called; the worker exits once it is and its requests are answered. */
  on(event: 'softKill', callback: (done: () => void) => unknown): LpmWorker;
  on(event: 'softKill'): Registration<[() => void]>;
  on(event: 'hardKill', callback: () => unknown): LpmWorker;
  on(event: 'hardKill'): Registration<[]>;
  /** A broadcast of that name, with its decoded payload (and the handle of the descriptor it carried, if any). */
  on(event: string, callback: (payload: any, handle?: NativeHandle) => unknown): LpmWorker;
  on(event: string): Registration<[any, NativeHandle?]>;
  /** Accepts requests (mandatory once at start). */
  ready(): LpmWorker;
  /** Accepts no new requests until the next `ready()`. */
  busy(): LpmWorker;
  /** Emits an event to the supervisor; `callback` runs once it is queued. */
  emit(event: string, payload?: unknown, callback?: () => void): LpmWorker;
  /** The requests in flight (a copy). */
  requests(): LpmRequest[];
}

/** The worker; it connects to nanny when first used. */
export const worker: LpmWorker;
