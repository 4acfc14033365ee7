// An LPM worker.js as its user wrote it (load-process-manager's example,
// extended with respond, ack, emit, softKill, hardKill, req.socket and
// req.stream); its only change for nanny is the require line.
var worker = require('nanny-worker/lpm').worker;

if (!process.env.NANNY_FD) {
    // `node --test sdk/node/test/` runs every file here: outside nanny, nothing to do.
    console.log('lpm-worker.js: not started by nanny (no NANNY_FD); exiting');
    process.exit(0);
}

worker.on('request', function (req) {
    console.log('Received a new request with payload: %o', req.data);
    if (req.hasSocket) {
        var socket = req.socket;
        if (!socket) return req.respond({ socket: 'gone' });
        socket.end('hello from an lpm worker\n', function () {
            req.respond({ socket: 'written' });
        });
        return;
    }
    if (req.hasStream) {
        var chunks = [];
        req.stream.on('data', function (chunk) {
            chunks.push(chunk);
        });
        req.stream.on('end', function () {
            req.respond({ stream: Buffer.concat(chunks) });
        });
        return;
    }
    req.ack();
    if (req.data && req.data.hello === 'count') {
        worker.emit('counted', { ongoing: worker.requests().length });
        return req.respond({ ongoing: worker.requests().length });
    }
    // Wait a little before replying
    setTimeout(function () {
        req.respond({ dummy: 'world', got: req.data });
    }, 20);
});

worker.on('ping').then(function (payload) {
    worker.emit('pong', payload);
});

worker.on('softKill', function (done) {
    worker.emit('bye', 'soft', function () {
        done();
    });
});

worker.on('hardKill', function () {
    console.log('hard kill');
});

// Notify the master that worker is ready to accept requests
worker.ready();
