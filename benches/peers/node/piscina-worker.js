// piscina's task: the payload back, with this thread's id so the bench can
// count answers per worker.
const { threadId } = require('node:worker_threads');

module.exports = (data) => [threadId, data];
