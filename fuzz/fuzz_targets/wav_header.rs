//! The WAV header parser fed any bytes in any pieces; see
//! `flacstream_fuzz::header` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flacstream_fuzz::header::check(data));
