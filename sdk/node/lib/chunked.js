'use strict';
// The chunked stream format (PROTOCOL.md 11.4): u32 big-endian length, that
// many bytes; a zero length is the clean end; end of file before it is a
// truncated stream, an error.

const { Readable, Writable, pipeline } = require('node:stream');

/** Writers send chunks of at most this many bytes. */
const MAX_WRITE_CHUNK = 64 * 1024;
/** Readers refuse a chunk longer than this. */
const MAX_READ_CHUNK = 1024 * 1024;

/** The error of a stream that ended before its end chunk. */
function truncated() {
  const e = new Error('stream truncated: the other side exited before finishing');
  e.code = 'ERR_STREAM_TRUNCATED';
  return e;
}

/** The bytes of a chunked stream read from `socket`, as a Readable. */
class ChunkReader extends Readable {
  constructor(socket) {
    super();
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('end', () => this.ended || this.destroy(truncated()));
    socket.on('error', (e) => this.ended || this.destroy(e));
  }

  onData(chunk) {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (!this.ended && this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_READ_CHUNK) return this.destroy(new Error(`chunk of ${len} bytes is longer than 1 MiB`));
      if (len === 0) {
        this.ended = true;
        this.push(null);
        this.socket.destroy();
        return;
      }
      if (this.buf.length < 4 + len) return;
      const piece = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      if (!this.push(piece)) this.socket.pause();
    }
  }

  _read() {
    this.socket.resume();
  }

  _destroy(err, cb) {
    this.socket.destroy();
    cb(err);
  }
}

/** A Writable whose bytes go to `socket` as chunks, then the end chunk on `end()`. */
class ChunkWriter extends Writable {
  constructor(socket) {
    super();
    this.socket = socket;
    // The reader went away: stop at once, even while the source is idle.
    socket.on('error', (e) => this.destroy(e));
    socket.on('close', () => this.writableFinished || this.destroy(new Error('the reader closed the stream')));
    socket.resume();
  }

  _write(chunk, encoding, cb) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    const parts = [];
    for (let at = 0; at < bytes.length; at += MAX_WRITE_CHUNK) {
      const piece = bytes.subarray(at, at + MAX_WRITE_CHUNK);
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32BE(piece.length, 0);
      parts.push(head, piece);
    }
    if (parts.length === 0) return cb();
    this.socket.write(Buffer.concat(parts), cb);
  }

  _final(cb) {
    this.socket.end(Buffer.alloc(4), cb);
  }

  _destroy(err, cb) {
    this.socket.destroy();
    cb(err);
  }

  /** Writes `source` (a Readable, an async iterable, a Buffer or a string) and ends. */
  pipeFrom(source) {
    const from = typeof source === 'string' || source instanceof Uint8Array ? Readable.from([Buffer.from(source)]) : source;
    return new Promise((resolve, reject) => pipeline(from, this, (e) => (e ? reject(e) : resolve())));
  }
}

module.exports = { ChunkReader, ChunkWriter, MAX_READ_CHUNK, MAX_WRITE_CHUNK, truncated };
