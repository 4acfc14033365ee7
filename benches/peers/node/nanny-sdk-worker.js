// A nanny worker on the repository's Node SDK (sdk/node): every payload
// back. The bench sends a MessagePack bin; the SDK decodes it to a
// Uint8Array, which it encodes back as a bin of the same length.
'use strict';
const nanny = require('../../../sdk/node');

const worker = nanny.connect();
worker.on('request', (req) => req.respond(req.data));
worker.ready();
