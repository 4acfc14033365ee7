//! One hello body (no length prefix: the target adds it), read by each
//! side: the worker's hello as the supervisor reads it, the supervisor's as
//! the SDK reads it. Seeded with valid hellos (`corpus/hello`), so the
//! fuzzer works on the fields rather than on the framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanny_fuzz::{read_all, MAX};
use nanny_worker::protocol::{self as p, FromWorker, ToWorker};

fuzz_target!(|body: &[u8]| {
    let Ok(len) = u32::try_from(body.len()) else {
        return;
    };
    let framed = [&len.to_be_bytes()[..], body].concat();
    read_all::<FromWorker>(p::idle_frame_reader(&framed[..], MAX));
    read_all::<ToWorker>(p::frame_reader(&framed[..], MAX));
});
