//! A durable segment's header parsed from any bytes; see
//! `flacstream_fuzz::segment` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flacstream_fuzz::segment::check(data));
