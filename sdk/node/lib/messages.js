'use strict';
// The messages of PROTOCOL.md section 4: checking what the supervisor sends
// (anything else is a protocol error), building what the worker sends.

const { ProtocolError } = require('./codec');

const U32 = 0xffff_ffff;
const ATTACHMENTS = new Set(['Tcp', 'Unix', 'Fd', 'Stream']);
const MESSAGE_KINDS = new Set(['public', 'group', 'private', 'confirmation']);
const UNITS = new Set(['SoftKill', 'HardKill', 'Drain']);

const isUint = (v, max) => Number.isInteger(v) && v >= 0 && v <= max;
const checks = {
  u32: (v) => isUint(v, U32),
  u64: (v) => isUint(v, Number.MAX_VALUE),
  i32: (v) => Number.isInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff,
  str: (v) => typeof v === 'string',
  bin: (v) => v instanceof Uint8Array,
  uuid: (v) => v instanceof Uint8Array && v.length === 16,
  map: (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array),
  array: (v) => Array.isArray(v),
};

/** Reads field `name` of `map` as `type`; `optional` fields may be absent or nil. */
function field(map, name, type, what, optional = false) {
  const v = map[name];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new ProtocolError(`${what}: missing field ${name}`);
  }
  if (!checks[type](v)) throw new ProtocolError(`${what}: field ${name} is not a ${type}`);
  return v;
}

/** Splits an externally tagged enum value into `[tag, body]`. */
function variant(value, what) {
  if (typeof value === 'string') return [value, null];
  if (checks.map(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1) return [keys[0], value[keys[0]]];
  }
  throw new ProtocolError(`${what}: not a known message`);
}

function outcome(value, what) {
  const [tag, body] = variant(value, what);
  if (tag === 'Ok' && checks.bin(body)) return { ok: body };
  if (tag === 'Err' && checks.map(body)) {
    return { err: { kind: field(body, 'kind', 'str', what), message: field(body, 'message', 'str', what) } };
  }
  throw new ProtocolError(`${what}: not an outcome`);
}

/** The fields of a `Request` (a frame's or an inline one's). */
function requestFrame(m, what = 'Request') {
  const attachment = field(m, 'attachment', 'str', what, true);
  if (attachment !== undefined && !ATTACHMENTS.has(attachment)) {
    throw new ProtocolError(`${what}: unknown attachment ${attachment}`);
  }
  return {
    id: field(m, 'id', 'uuid', what),
    attempt: field(m, 'attempt', 'u32', what),
    createdAtMs: field(m, 'created_at_ms', 'u64', what),
    payload: field(m, 'payload', 'bin', what),
    attachment,
  };
}

function meta(m) {
  const w = 'Message.meta';
  return { id: field(m, 'id', 'u64', w), name: field(m, 'name', 'str', w), pid: field(m, 'pid', 'u32', w), pool: field(m, 'pool', 'str', w) };
}

const parsers = {
  Hello: (m) => ({
    version: field(m, 'version', 'u32', 'Hello'),
    minVersion: field(m, 'min_version', 'u32', 'Hello', true),
    workerId: field(m, 'worker_id', 'u64', 'Hello'),
    pulseMs: field(m, 'pulse_ms', 'u64', 'Hello'),
    maxFrameLen: field(m, 'max_frame_len', 'u32', 'Hello'),
    unhealthyTimeoutMs: field(m, 'unhealthy_timeout_ms', 'u64', 'Hello', true),
  }),
  Request: (m) => requestFrame(m),
  Cancel: (m) => ({ id: field(m, 'id', 'uuid', 'Cancel'), attempt: field(m, 'attempt', 'u32', 'Cancel') }),
  Broadcast: (m) => ({ event: field(m, 'event', 'str', 'Broadcast'), payload: field(m, 'payload', 'bin', 'Broadcast') }),
  Message: (m) => {
    const kind = field(m, 'kind', 'str', 'Message');
    if (!MESSAGE_KINDS.has(kind)) throw new ProtocolError(`Message: unknown kind ${kind}`);
    return { kind, meta: meta(field(m, 'meta', 'map', 'Message')), data: field(m, 'data', 'bin', 'Message') };
  },
  QueryAnswer: (m) => {
    const [tag, body] = variant(field(m, 'answer', 'map', 'QueryAnswer'), 'QueryAnswer');
    if ((tag !== 'ClusterInfo' && tag !== 'Stats') || !checks.map(body)) throw new ProtocolError('QueryAnswer: unknown answer');
    return { id: field(m, 'id', 'u64', 'QueryAnswer'), answer: { [tag]: body } };
  },
  Answer: (m) => ({ id: field(m, 'id', 'u64', 'Answer'), outcome: outcome(field(m, 'outcome', 'map', 'Answer'), 'Answer') }),
  Exit: (m) => ({ code: field(m, 'code', 'i32', 'Exit') }),
};

/**
 * Checks one decoded `ToWorker` message and returns `{type, ...fields}`
 * (camelCase); throws a ProtocolError for anything that is not one.
 */
function parseToWorker(value) {
  const [tag, body] = variant(value, 'frame');
  if (UNITS.has(tag) && (body === null || body === undefined)) return { type: tag };
  const parse = Object.hasOwn(parsers, tag) ? parsers[tag] : null;
  if (parse === null || !checks.map(body)) throw new ProtocolError(`frame: not a known message (${tag})`);
  return { type: tag, ...parse(body) };
}

const attempt = (id, n) => ({ id, attempt: n });

/** Builders of the worker's messages, fields in the Rust types' order. */
const build = {
  hello: (version, pid, agent, capabilities) => ({
    Hello: capabilities.length > 0 ? { version, pid, agent, capabilities } : { version, pid, agent },
  }),
  ready: () => 'Ready',
  busy: () => 'Busy',
  response: (id, n, out, stream) => ({
    Response: stream ? { ...attempt(id, n), outcome: out, stream: true } : { ...attempt(id, n), outcome: out },
  }),
  ok: (payload) => ({ Ok: payload }),
  err: (kind, message) => ({ Err: { kind, message } }),
  accepted: (id, n) => ({ Accepted: attempt(id, n) }),
  ack: (id, n) => ({ Ack: attempt(id, n) }),
  emit: (event, payload) => ({ Emit: { event, payload } }),
  heartbeat: (h) => ({ Heartbeat: h }),
  listening: (on) => ({ Listening: { on } }),
  connectionTaken: (id, n) => ({ ConnectionTaken: attempt(id, n) }),
  connectionBounced: (id, n) => ({ ConnectionBounced: attempt(id, n) }),
  connectionClosed: (id) => ({ ConnectionClosed: { id } }),
  publish: (to, data) => ({ Publish: { to, data } }),
  query: (id, query) => ({ Query: { id, query } }),
  confirmed: (identifier) => ({ Confirmed: { identifier } }),
  ask: (id, question) => ({ Ask: { id, question } }),
  closing: (code) => ({ Closing: { code } }),
};

module.exports = { build, outcome, parseToWorker, requestFrame };
