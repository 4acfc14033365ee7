'use strict';
// How a worker ends: a soft kill (SoftKill, Exit{code}, SIGTERM) finishes
// what is in flight, runs the hooks, exits; a hard kill runs its hooks and
// exits; close(code) says Closing and exits at once.

const { build } = require('./messages');

/** The stopping side of one Worker. */
class Stopping {
  constructor(worker) {
    this.worker = worker;
    this.softHooks = [];
    this.earlyHooks = [];
    this.hardHooks = [];
    this.code = null;
    this.hard = false;
    this.idle = null;
    this.started = new Promise((resolve) => (this.resolveStarted = resolve));
  }

  /**
   * Adds a soft-kill hook. By default it runs once in-flight work is done;
   * `{early: true}`: at once, when the soft kill begins (the exit then waits
   * for it as well as for the work in flight).
   */
  onSoft(hook, { early = false } = {}) {
    (early ? this.earlyHooks : this.softHooks).push(hook);
  }

  onHard(hook) {
    this.hardHooks.push(hook);
  }

  /** Begins the soft kill once (a second SoftKill, Exit or SIGTERM is ignored). */
  begin(code, why) {
    if (this.code !== null || this.hard) return;
    this.code = code;
    this.why = why;
    this.resolveStarted(why);
    this.worker.channel?.drain();
    this.run().catch((e) => {
      process.stderr.write(`nanny-worker: soft-kill hook failed: ${e?.stack ?? e}\n`);
      this.exit(1);
    });
  }

  async run() {
    const early = this.earlyHooks.map((hook) => Promise.resolve().then(() => hook(this.why)));
    await new Promise((resolve) => {
      this.idle = resolve;
      this.check();
    });
    await Promise.all(early);
    for (const hook of this.softHooks) await hook(this.why);
    await this.exit(this.code);
  }

  /** Resolves the wait for in-flight work once nothing is left. */
  check() {
    if (this.idle === null) return;
    const channelIdle = this.worker.channel ? this.worker.channel.idle() : true;
    if (this.worker.answers.idle() && channelIdle) {
      const resolve = this.idle;
      this.idle = null;
      resolve();
    }
  }

  /** A HardKill: run the hooks (best effort), exit. */
  hardKill() {
    if (this.hard) return;
    this.hard = true;
    this.resolveStarted('HardKill');
    const results = [];
    for (const hook of this.hardHooks) {
      try {
        results.push(hook());
      } catch (e) {
        process.stderr.write(`nanny-worker: hard-kill hook failed: ${e?.stack ?? e}\n`);
      }
    }
    Promise.allSettled(results).then(() => this.exit(0));
  }

  /** `close(code)`: Closing{code}, flush, exit. */
  async close(code) {
    this.worker.link.send(build.closing(code));
    await this.exit(code);
  }

  async exit(code) {
    this.worker.pulse?.stop();
    await this.worker.link.drain();
    this.worker.channel?.close();
    process.exit(code);
  }
}

module.exports = { Stopping };
