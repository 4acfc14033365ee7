//! Any bytes a supervisor may write, through the SDK's reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanny_fuzz::{read_all, MAX};
use nanny_worker::protocol::{self as p, ToWorker};

fuzz_target!(|data: &[u8]| {
    read_all::<ToWorker>(p::frame_reader(data, MAX));
});
