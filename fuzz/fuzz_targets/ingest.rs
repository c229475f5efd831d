//! WAV or raw PCM in any pieces → FLAC → claxon, compared sample for sample
//! with an independent reading; see `flacstream_fuzz::ingest`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flacstream_fuzz::ingest::check(data));
