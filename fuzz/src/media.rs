//! The `media` check: any bytes through the decode path of uploads that are
//! not WAV (`flacstream_codec::media`), as `/convert` and `/upload` decode
//! their spool.
//!
//! It must never panic out of the decoder's API (a panic inside symphonia is
//! caught there and refused as `corrupt_audio`; [`quiet_symphonia_panics`]
//! keeps libFuzzer's abort-on-panic for every other panic), never allocate
//! more than [`MAX_ALLOCATION_BYTES`] at once whatever the file declares,
//! and hand out only whole sample frames in the layout it announced.

use std::io::Cursor;

use flacstream_codec::media::MediaDecoder;
use symphonia::core::io::{MediaSource, ReadOnlySource};

use crate::alloc;

/// Largest single allocation allowed while decoding a fuzz input: a FLAC
/// block of 65535 samples × 8 channels × 4 bytes is 2 MiB,
/// symphonia's largest legitimate buffer here; a declared size must never
/// be allocated before its bytes exist.
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// PCM decoded from one input before the check stops (bounds a run's time:
/// a few bytes of MP3 may decode to a second of audio).
const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Replaces libFuzzer's panic hook: panics raised inside symphonia's crates
/// are left to the decoder's `catch_unwind` (they are refusals, by design);
/// any other panic still aborts, so the fuzzer reports it as a crash.
pub fn quiet_symphonia_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_symphonia = info
                .location()
                .is_some_and(|l| l.file().contains("symphonia") || l.file().contains("mp4parse"));
            if !in_symphonia {
                abort(info);
            }
        }));
    });
}

/// Decodes `data` twice: from a seekable source, as `/convert` reads its
/// spool, and from one that cannot seek, as `/stream` decodes as bytes
/// arrive; see the module docs for what must hold.
pub fn check(data: &[u8]) {
    let seekable: Box<dyn MediaSource> = Box::new(Cursor::new(data.to_vec()));
    let unseekable: Box<dyn MediaSource> =
        Box::new(ReadOnlySource::new(Cursor::new(data.to_vec())));
    for source in [seekable, unseekable] {
        let (result, largest) = alloc::largest_allocation(|| decode(source));
        assert!(
            largest <= MAX_ALLOCATION_BYTES,
            "a {largest}-byte allocation from a {}-byte input",
            data.len()
        );
        if let Err(e) = result {
            assert!(!e.code().is_empty() && !e.to_string().is_empty());
        }
    }
}

fn decode(source: Box<dyn MediaSource>) -> Result<(), flacstream_codec::media::MediaError> {
    let mut decoder = MediaDecoder::open(source)?;
    let info = decoder.info();
    let align = info.layout.block_align();
    assert!((1..=8).contains(&info.layout.channels));
    assert!((1..=3).contains(&info.layout.bytes_per_sample));
    assert!(info.sample_rate > 0);
    let mut out = Vec::new();
    while out.len() < MAX_OUTPUT_BYTES {
        let before = out.len();
        if !decoder.next_pcm(&mut out)? {
            break;
        }
        assert_eq!((out.len() - before) % align, 0, "a partial sample frame");
    }
    Ok(())
}
