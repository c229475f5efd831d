//! Any bytes through the decoder of uploads that are not WAV (symphonia,
//! the MP4 edit list, the conversion to PCM); see `flacstream_fuzz::media`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flacstream_fuzz::media::quiet_symphonia_panics();
    flacstream_fuzz::media::check(data)
});
