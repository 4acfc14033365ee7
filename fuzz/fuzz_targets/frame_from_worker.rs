//! Any bytes a worker may write, through the supervisor's reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanny_fuzz::{read_all, MAX};
use nanny_worker::protocol::{self as p, FromWorker};

fuzz_target!(|data: &[u8]| {
    read_all::<FromWorker>(p::idle_frame_reader(data, MAX));
});
