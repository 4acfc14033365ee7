// Types of nanny-worker, the Node.js SDK of nanny's worker protocol (version 4).

import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { Socket } from 'node:net';

/** The protocol version this SDK speaks. */
export const PROTOCOL_VERSION: number;
/** The exit code after end of file (or a broken pipe) on the framed socket. */
export const EXIT_DISCONNECTED: number;
/** The exit code after a protocol error. */
export const EXIT_PROTOCOL: number;

/** True in a process nanny started as a protocol worker (`NANNY_FD` set). */
export function isWorker(): boolean;
/** Connects to the supervisor and sends the hello; later calls return the same worker. */
export function connect(options?: WorkerOptions): Worker;
/** The host's pid of this process (`/proc/self`), else `process.pid`. */
export function hostPid(): number;
/** Encodes a value as MessagePack (`undefined` fields left out). */
export function pack(value: unknown): Uint8Array;
/** Decodes one MessagePack value. */
export function unpack(bytes: Uint8Array): unknown;

export interface WorkerOptions {
  /** The hello's `agent` (default `nanny-worker-node/<version> node/<version>`). */
  agent?: string;
  /** Capabilities declared on top of the SDK's own. */
  capabilities?: string[];
  /** The environment to read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** The supervisor's hello, checked. */
export interface SupervisorHello {
  version: number;
  minVersion?: number;
  workerId: number;
  pulseMs: number;
  maxFrameLen: number;
  /** Present: heartbeats are mandatory, silence this long after Ready is a stall. */
  unhealthyTimeoutMs?: number;
}

/**
 * A descriptor the supervisor sent, as Node received it: a raw libuv handle
 * (`TCP` or `Pipe`), already made non-blocking. Wrap a connection with
 * `new net.Socket({ handle })`; a TCP listening socket with
 * `net.createServer(onConnection).listen(handle)`; `close()` one you do not use.
 */
export interface NativeHandle {
  /** Its file descriptor. */
  readonly fd: number;
  /** Closes it (at the next turn of the event loop). */
  close(callback?: () => void): void;
}

/** A balanced connection (section 12): a `net.Socket` that says where it came from. */
export interface IncomingSocket extends Socket {
  /** The listener's name (`Listener::name`, `[[listener]] name`). */
  readonly nannyListener: string;
  /** Its kind. */
  readonly nannyKind: 'Tcp' | 'Unix';
}

/**
 * `worker.incoming()`: the connections nanny's balancer gives this worker,
 * as an async iterable and as `'connection'` events; `'end'` once it stops
 * taking them (`end()`, a Drain or a soft kill).
 */
export interface Incoming extends EventEmitter, AsyncIterable<IncomingSocket> {
  /** Connections taken and not yet closed. */
  readonly connections: number;
  /** True once it takes no new connections. */
  readonly ended: boolean;
  /** Takes no new connections (`Listening{on: false}`); those taken are still handed out. */
  end(): void;
  on(event: 'connection', listener: (socket: IncomingSocket) => void): this;
  on(event: 'end', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Who to publish to: everyone, a pool, or one worker by id or name. */
export type Recipients = 'public' | { group: string } | { id: number } | { name: string };
/** A member to kill: a pid, or by pid, id or name. */
export type KillTarget = number | { pid: number } | { id: number } | { name: string };

export interface SoftKillOptions {
  /** Run at once when the soft kill begins, not after the work in flight. */
  early?: boolean;
}

/** A message of section 14 delivered to this worker. */
export interface Message {
  kind: 'public' | 'group' | 'private' | 'confirmation';
  meta: { id: number; name: string; pid: number; pool: string };
  data: Uint8Array;
}

/**
 * A nanny worker. `emit` sends an event to the supervisor; `on` listens to the
 * SDK's events and to broadcasts by name.
 */
export class Worker extends EventEmitter {
  constructor(options?: WorkerOptions);
  /** `NANNY_WORKER_ID`. */
  readonly id: number | undefined;
  /** `NANNY_POOL`. */
  readonly pool: string | undefined;
  /** `NANNY_WORKER_NAME`. */
  readonly name: string | undefined;
  /** The host pid sent in the hello. */
  readonly pid: number;
  /** `max_frame_len - 256`. */
  readonly maxPayloadLen: number;
  /** Resolves to the supervisor's hello. */
  readonly hello: Promise<SupervisorHello>;
  /**
   * The capabilities its hello declared: `messaging`, `exit`, then
   * `fd-channel` and `connections` on a pool with `fd_channel = "node"`,
   * then `WorkerOptions.capabilities`.
   */
  readonly capabilities: readonly string[];

  /** Accepts requests (at start, and to end `busy()`). */
  ready(): this;
  /** Accepts no new requests until the next `ready()`. */
  busy(): this;
  /** The attempts in flight. */
  requests(): Request[];
  /** Sends event `event` with `payload` (MessagePack) to the supervisor. */
  emit(event: string, payload?: unknown): boolean;
  /** `emit` with payload bytes as they are. */
  emitRaw(event: string, bytes: Uint8Array): boolean;
  /** Runs `hook` on a soft kill (SoftKill, Exit, SIGTERM); the worker then exits 0. */
  onSoftKill(hook: () => unknown, options?: SoftKillOptions): this;
  /** Runs `hook` on a HardKill (best effort). */
  onHardKill(hook: () => unknown): this;
  /** Sends `Closing{code}`, flushes, exits with `code`. */
  close(code?: number): Promise<void>;
  /** Resolves once the worker begins to stop. */
  draining(): Promise<void>;
  /** Publishes `data` (MessagePack) to `to`. */
  publish(to: Recipients, data: unknown): boolean;
  /** Sends one confirmation of `identifier`. */
  confirm(identifier: string): boolean;
  /** Calls `fn(metas)` each time `n` confirmations of `identifier` arrived. */
  onConfirmation(n: number, identifier: string, fn: (metas: Message['meta'][]) => void): this;
  /** The supervisor's pools and workers. */
  clusterInfo(): Promise<{ supervisor_pid: number; pools: { name: string; workers: { id: number; name: string; pid: number }[] }[] }>;
  /** This worker's counters. */
  stats(): Promise<Record<string, unknown>>;
  /** Asks the supervisor's handler of `event`; rejects with an AskError. */
  ask(event: string, payload?: unknown): Promise<unknown>;
  /** Asks the supervisor to end a member. */
  kill(target: KillTarget, code?: number): Promise<unknown>;
  /** Asks for `count` new workers of `pool`. */
  spawn(pool: string, count: number, options?: { respawn?: boolean; args?: string[]; cpus?: number[] }): Promise<{ id: number; name: string }[]>;
  /** Asks for a make-before-break restart of this worker. */
  restartMe(): Promise<unknown>;
  /**
   * Balanced connections; needs the Node channel (`fd_channel = "node"`),
   * else throws (and throws while another is not ended). `queue`: taken
   * connections kept for a slow consumer before new ones are bounced (128).
   */
  incoming(options?: { queue?: number }): Incoming;

  on(event: 'request', listener: (req: Request) => unknown): this;
  /** Every broadcast; `handle` if it carried a descriptor (closed if no listener hears it). */
  on(event: 'broadcast', listener: (event: string, data: unknown, payload: Uint8Array, handle?: NativeHandle) => void): this;
  on(event: 'message', listener: (message: Message) => void): this;
  on(event: 'disconnect' | 'drain', listener: () => void): this;
  on(event: 'protocolError', listener: (error: ProtocolError) => void): this;
  /** A broadcast by its name; `handle` if it carried a descriptor. */
  on(event: string, listener: (data: unknown, payload: Uint8Array, handle?: NativeHandle) => void): this;
}

/** One attempt of a request. Answer it exactly once. */
export class Request {
  /** The request id, a UUID string (the same for every attempt). */
  readonly id: string;
  /** The attempt number, from 1. */
  readonly attempt: number;
  /** When the request was first enqueued, ms since the Unix epoch. */
  readonly createdAt: number;
  /** The raw payload bytes. */
  readonly payload: Uint8Array;
  /** `"Tcp"`, `"Unix"`, `"Fd"`, `"Stream"` or undefined. */
  readonly attachmentKind: 'Tcp' | 'Unix' | 'Fd' | 'Stream' | undefined;
  /** True once answered. */
  readonly answered: boolean;
  /** The payload decoded from MessagePack. */
  readonly data: any;
  /** Aborted when the attempt is cancelled or the link ends. */
  readonly cancelled: AbortSignal;
  /** A connection is attached (`Tcp`, `Unix`, or `Fd`: a stream socket given as a descriptor). */
  readonly hasSocket: boolean;
  /** A byte stream is attached. */
  readonly hasStream: boolean;
  /**
   * The attached connection (needs the Node channel): the first read takes
   * it (sends `Accepted`), later reads give the same socket; null if none or
   * cancelled. Untaken, it is closed once the attempt is answered.
   */
  readonly socket: Socket | null;
  /**
   * The attached byte stream (needs the Node channel), taken like `socket`;
   * it errors with code `ERR_STREAM_TRUNCATED` if the sender ends early.
   */
  readonly stream: Readable | null;
  /** Answers with `value` as MessagePack; false if not sent. */
  respond(value: unknown): boolean;
  /** Answers with raw payload bytes. */
  respondRaw(bytes: Uint8Array): boolean;
  /** Answers with a remote error. */
  fail(kind: string | Error, message?: string): boolean;
  /**
   * Answers with `value` and a response stream (needs the Node channel):
   * with `source`, resolves once it is written; without, resolves to a
   * Writable to write and `end()`. Elsewhere answers `Err{kind:
   * "attachment"}` and rejects.
   */
  respondStream(value: unknown, source: Readable | AsyncIterable<Uint8Array | string> | Uint8Array | string): Promise<void>;
  respondStream(value: unknown): Promise<Writable>;
  /** Tells the supervisor the request was taken (informational). */
  ack(): void;
}

/** A second answer to one attempt. */
export class AlreadyAnsweredError extends Error {}
/** A question's `Err` answer (or `timeout`). */
export class AskError extends Error {
  readonly kind: string;
}
/** A protocol error: the link is closed. */
export class ProtocolError extends Error {}
