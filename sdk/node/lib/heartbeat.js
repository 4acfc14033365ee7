'use strict';
// Heartbeats from the event loop (PROTOCOL.md section 9): one timer per
// pulse; `lag_us` is how late that timer fired, so a blocked loop shows.

const { build } = require('./messages');

const nowUs = () => process.hrtime.bigint() / 1000n;

/** Node's heap figures, in `runtime_memory` (contract A: snake_case, u64). */
function runtimeMemory(mem) {
  return {
    heap_total: mem.heapTotal,
    heap_used: mem.heapUsed,
    external: mem.external,
    array_buffers: mem.arrayBuffers,
  };
}

/**
 * Sends a Heartbeat every `pulseMs` through `send`, filled by `stats()`
 * (`{inFlight, served}`). The timer is unref'd: it never keeps the process up.
 */
class Pulse {
  constructor(pulseMs, send, stats, startedUs = nowUs()) {
    this.pulseUs = BigInt(Math.max(1, pulseMs)) * 1000n;
    this.send = send;
    this.stats = stats;
    this.started = startedUs;
    this.timer = null;
    this.lastLagUs = 0;
  }

  /** Sends the first heartbeat now and schedules the next. */
  start() {
    this.beat(0n);
    this.schedule(nowUs() + this.pulseUs);
  }

  schedule(due) {
    const waitMs = Number((due - nowUs()) / 1000n);
    this.timer = setTimeout(() => this.fire(due), Math.max(0, waitMs));
    this.timer.unref();
  }

  fire(due) {
    const now = nowUs();
    const lag = now > due ? now - due : 0n;
    this.beat(lag);
    // The next pulse is one period after this one actually fired, so a long
    // block produces one late beat, not a burst of catch-up beats.
    this.schedule(now + this.pulseUs);
  }

  beat(lagUs) {
    const mem = process.memoryUsage();
    const { inFlight, served } = this.stats();
    this.lastLagUs = Number(lagUs);
    this.send(
      build.heartbeat({
        rss_bytes: mem.rss,
        in_flight: inFlight,
        lag_us: this.lastLagUs,
        uptime_ms: Number((nowUs() - this.started) / 1000n),
        served,
        runtime_memory: runtimeMemory(mem),
      }),
    );
  }

  stop() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

module.exports = { Pulse, runtimeMemory };
