//! The `wav_header` check: [`WavParser`] fed any bytes in any pieces.
//!
//! It must never panic; give the same result (format, audio, end, error and
//! where the error fired) whether the bytes come in pieces or whole; accept
//! only headers within its bound; agree with [`reference::read_wav`] on where
//! the audio is and what it is; and allocate nothing near a declared size.

use flacstream_codec::wav::{WavError, WavEvent, WavFormat, WavParser, MAX_FMT_CHUNK_BYTES};

use crate::alloc::largest_allocation;
use crate::plan::{max_header_bytes, Splits};
use crate::reference;

/// Prefix bytes before the WAV bytes: [`Splits`], then the header bound.
pub const PREFIX_BYTES: usize = Splits::BYTES + 1;

/// Largest single allocation the parser may make, in bytes: its scratch
/// buffer holds at most a `fmt ` body, and a `Vec` growing in pieces may
/// double its capacity past what it holds.
pub const MAX_PARSER_ALLOCATION: usize = 2 * MAX_FMT_CHUNK_BYTES as usize;

/// What a parser made of a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The format, once the header was complete.
    pub format: Option<WavFormat>,
    /// Bytes consumed before the format event: the audio's offset.
    pub data_offset: Option<usize>,
    /// Every audio byte handed out, in order.
    pub audio: Vec<u8>,
    /// Whether the end of the declared data was reported.
    pub data_end: bool,
    /// Whether the input may end here ([`WavParser::finish`]).
    pub finish: Result<(), WavError>,
}

/// Feeds `pieces` to a new parser bounded by `max_header_bytes`. An error
/// comes with the offset of the byte at which it fired. Also returns the
/// largest single allocation made inside the parser.
pub fn parse(
    max_header_bytes: u64,
    pieces: &[&[u8]],
) -> (Result<Parsed, (WavError, usize)>, usize) {
    let mut parser = WavParser::new(max_header_bytes);
    let mut parsed = Parsed {
        format: None,
        data_offset: None,
        audio: Vec::new(),
        data_end: false,
        finish: Ok(()),
    };
    let mut offset = 0;
    let mut largest = 0;
    for piece in pieces {
        let mut rest: &[u8] = piece;
        loop {
            let before = rest.len();
            let (event, size) = largest_allocation(|| parser.next(&mut rest));
            largest = largest.max(size);
            offset += before - rest.len();
            match event {
                Err(e) => return (Err((e, offset)), largest),
                Ok(None) => break,
                Ok(Some(WavEvent::Format(f))) => {
                    assert!(parsed.format.is_none(), "a second format event");
                    parsed.format = Some(f);
                    parsed.data_offset = Some(offset);
                }
                Ok(Some(WavEvent::Audio(a))) => {
                    assert!(parsed.format.is_some(), "audio before the format");
                    assert!(!parsed.data_end, "audio after the end of data");
                    assert!(!a.is_empty(), "an empty audio event");
                    parsed.audio.extend_from_slice(a);
                }
                Ok(Some(WavEvent::DataEnd)) => {
                    assert!(parsed.format.is_some(), "end of data before the format");
                    assert!(!parsed.data_end, "a second end of data");
                    parsed.data_end = true;
                }
            }
        }
        assert_eq!(parser.is_done(), parsed.data_end);
        assert_eq!(parser.format(), parsed.format.as_ref());
    }
    parsed.finish = parser.finish();
    (Ok(parsed), largest)
}

/// The check; `data` is a fuzz input (see [`crate::plan`]).
pub fn check(data: &[u8]) {
    let Some((prefix, wav)) = data.split_first_chunk::<PREFIX_BYTES>() else {
        return;
    };
    let mut split = [0; Splits::BYTES];
    split.copy_from_slice(&prefix[..Splits::BYTES]);
    let splits = Splits::from_bytes(split);
    let max = max_header_bytes(prefix[Splits::BYTES]);

    let (pieced, largest) = parse(max, &splits.pieces(wav));
    assert!(
        largest <= MAX_PARSER_ALLOCATION,
        "the parser allocated {largest} bytes at once"
    );
    let (whole, _) = parse(max, &[wav]);
    assert_eq!(pieced, whole, "pieces ({splits:?}) and whole disagree");

    let Ok(parsed) = pieced else {
        return;
    };
    let Some(format) = parsed.format else {
        assert!(parsed.audio.is_empty() && !parsed.data_end);
        return;
    };
    assert_eq!(parsed.finish, Ok(()));
    let r = reference::read_wav(wav).expect("the parser accepted what the reference cannot read");
    assert!(
        r.counted_header_bytes <= max,
        "accepted {} header bytes over a bound of {max}",
        r.counted_header_bytes
    );
    assert_eq!(parsed.data_offset, Some(r.data_offset), "audio offset");
    assert_eq!(
        (format.channels, format.sample_rate),
        (r.channels, r.sample_rate)
    );
    assert_eq!(format.bytes_per_sample(), r.bytes_per_sample);
    assert_eq!(parsed.audio, r.data, "audio bytes");
    assert_eq!(parsed.data_end, r.data_complete, "end of data");
    let available = wav.len() - r.data_offset;
    match format.data_len {
        Some(n) => assert_eq!(r.data.len(), available.min(n as usize), "declared length"),
        None => assert_eq!(
            (r.data.len(), r.data_complete),
            (available, false),
            "a streaming header runs to the end"
        ),
    }
}
