'use strict';
// UUIDs: 16 bytes in RFC 4122 order on the wire, canonical strings in the API.

/** `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` from 16 bytes. */
function uuidString(bytes) {
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** 16 bytes from a canonical UUID string. */
function uuidBytes(text) {
  const hex = String(text).replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a UUID: ${text}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * The key of one attempt in the SDK's tables: the 16 id bytes as latin1
 * characters, then the attempt number (the id's length is fixed, so no two
 * attempts share a key).
 */
function attemptKey(idBytes, attempt) {
  const b = idBytes instanceof Buffer ? idBytes : Buffer.from(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength);
  return b.latin1Slice(0, 16) + attempt;
}

module.exports = { attemptKey, uuidBytes, uuidString };
