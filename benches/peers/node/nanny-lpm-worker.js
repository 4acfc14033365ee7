// load-process-manager's worker: every payload back, with this process's
// pid so the bench can count answers per worker.
const worker = require('../../../sdk/node/lpm').worker;

worker.on('request', (req) => req.respond([process.pid, req.data]));
worker.ready();
