'use strict';
// A plain Node.js HTTP server that knows nothing of nanny
// (tests/integration/node_listen.rs runs it under `node -r sdk/node/listen.js`).
//   GET /      answers "hello from <pid>"
//   POST /slow answers "started\n" at once and "finished by <pid>" once the
//              request body has ended (the client decides when).
// The port is PORT, default 8080.

const http = require('node:http');

http
  .createServer((req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
      req.on('data', () => {});
      req.on('end', () => res.end(`finished by ${process.pid}`));
      return;
    }
    res.end(`hello from ${process.pid}`);
  })
  .listen(Number(process.env.PORT || 8080));
