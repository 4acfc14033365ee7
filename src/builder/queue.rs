//! The builder's shared-queue setting (see [`crate::scaleout`]).

use super::Builder;

impl Builder {
    /// Shares each pool's request queue with other hosts' supervisors on
    /// Redis Streams (see [`crate::RedisQueue`] and the module
    /// [`crate::scaleout`]): `enqueue` then goes through Redis, and any
    /// host with workers for the pool may run the request. Requests with
    /// an attachment or a sticky key stay local. With a queue, a pool may
    /// have 0 workers (this host only calls it).
    pub fn queue(mut self, queue: crate::RedisQueue) -> Self {
        self.cfg.queue = Some(queue);
        self
    }
}
