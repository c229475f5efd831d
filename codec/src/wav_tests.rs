use super::*;
use crate::fixture::{
    pcm_bytes, random_splits, test_signal, wav_bytes, wav_with_fmt, DataSize, WavSpec,
};

/// Feeds `pieces` and collects (format, audio bytes, saw DataEnd).
fn parse_pieces(pieces: &[&[u8]]) -> Result<(Option<WavFormat>, Vec<u8>, bool), WavError> {
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    let mut format = None;
    let mut audio = Vec::new();
    let mut ended = false;
    for piece in pieces {
        let mut rest = *piece;
        while let Some(event) = parser.next(&mut rest)? {
            match event {
                WavEvent::Format(f) => {
                    assert!(format.is_none(), "format reported twice");
                    format = Some(f);
                }
                WavEvent::Audio(a) => audio.extend_from_slice(a),
                WavEvent::DataEnd => ended = true,
            }
        }
        assert!(rest.is_empty(), "parser left input unconsumed");
    }
    // A zero-length data chunk ends without further input.
    if let Some(WavEvent::DataEnd) = parser.next(&mut &[][..])? {
        ended = true;
    }
    Ok((format, audio, ended))
}

fn parse(bytes: &[u8]) -> Result<(Option<WavFormat>, Vec<u8>, bool), WavError> {
    parse_pieces(&[bytes])
}

#[test]
fn reads_hound_files_at_every_split() {
    for (channels, bits) in [(1u16, 8u16), (2, 16), (3, 24), (8, 16)] {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 22_050,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let samples = test_signal(50, channels, bits, 7);
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in &samples {
            match bits {
                8 => w.write_sample(s as i8).unwrap(),
                16 => w.write_sample(s as i16).unwrap(),
                _ => w.write_sample(s).unwrap(),
            }
        }
        w.finalize().unwrap();
        let bytes = cursor.into_inner();
        for split in 1..=bytes.len().min(90) {
            let pieces: Vec<&[u8]> = bytes.chunks(split).collect();
            let (format, audio, ended) = parse_pieces(&pieces).unwrap();
            let format = format.unwrap();
            assert_eq!((format.channels, format.container_bits), (channels, bits));
            assert_eq!(format.sample_rate, 22_050);
            assert_eq!(audio, pcm_bytes(&samples, bits), "split {split}");
            assert!(ended);
        }
    }
}

#[test]
fn streaming_sizes_mean_unknown_length() {
    let data = pcm_bytes(&test_signal(10, 2, 16, 1), 16);
    for size in [DataSize::StreamingMax, DataSize::StreamingZero] {
        let mut spec = WavSpec::pcm(2, 44_100, 16);
        spec.data_size = size;
        let (format, audio, ended) = parse(&wav_bytes(&spec, &data)).unwrap();
        assert_eq!(format.unwrap().data_len, None);
        assert_eq!(audio, data);
        assert!(!ended, "a streaming header never ends on its own");
    }
}

#[test]
fn empty_data_chunk_ends_at_once() {
    let spec = WavSpec::pcm(1, 8_000, 16);
    let (format, audio, ended) = parse(&wav_bytes(&spec, &[])).unwrap();
    assert_eq!(format.unwrap().data_len, Some(0));
    assert!(audio.is_empty());
    assert!(ended);
}

#[test]
fn skips_odd_chunks_and_ignores_bytes_after_data() {
    let data = pcm_bytes(&test_signal(33, 1, 8, 2), 8); // odd length: pad byte
    let mut spec = WavSpec::pcm(1, 11_025, 8);
    spec.extensible_mask = Some(0x8000_0001);
    spec.chunks_before_data = vec![
        (*b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00".to_vec()),
        (*b"JUNK", vec![0; 3]),
        (*b"fact", 33u32.to_le_bytes().to_vec()),
        (*b"smpl", vec![1; 61]),
    ];
    spec.chunks_after_data = vec![(*b"LIST", vec![7; 9]), (*b"id3 ", vec![1; 100])];
    let bytes = wav_bytes(&spec, &data);
    for seed in 0..20 {
        let (format, audio, ended) = parse_pieces(&random_splits(&bytes, 40, seed)).unwrap();
        let format = format.unwrap();
        assert_eq!(format.channel_mask, Some(0x8000_0001));
        assert_eq!(audio, data);
        assert!(ended);
    }
}

#[test]
fn overstated_data_length_yields_what_arrives() {
    let data = pcm_bytes(&test_signal(10, 1, 16, 3), 16);
    let mut spec = WavSpec::pcm(1, 16_000, 16);
    spec.data_size = DataSize::Overstated(1_000_000);
    let (format, audio, ended) = parse(&wav_bytes(&spec, &data)).unwrap();
    assert_eq!(format.unwrap().data_len, Some(1_000_000));
    assert_eq!(audio, data);
    assert!(!ended);
}

fn fmt_with(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let spec = WavSpec::pcm(2, 44_100, 16);
    let mut fmt = crate::fixture::fmt_body(&spec);
    f(&mut fmt);
    wav_with_fmt(&spec, &fmt, &[0; 8])
}

fn set_u16(fmt: &mut [u8], at: usize, v: u16) {
    fmt[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn malformed_headers_get_their_codes() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"OggS\0\0\0\0WAVE".to_vec(), "not_wav"),
        (b"RIFF\0\0\0\0AVI ".to_vec(), "not_wav"),
        (fmt_with(|f| set_u16(f, 2, 0)), "zero_channels"),
        (
            fmt_with(|f| f[4..8].copy_from_slice(&0u32.to_le_bytes())),
            "zero_sample_rate",
        ),
        (fmt_with(|f| set_u16(f, 12, 3)), "bad_block_align"),
        (fmt_with(|f| set_u16(f, 14, 0)), "zero_bits_per_sample"),
        (fmt_with(|f| f.truncate(14)), "bad_fmt_size"),
        (
            {
                let mut b = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
                b.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                b
            },
            "bad_fmt_size",
        ),
        (
            b"RIFF\x24\0\0\0WAVEdata\x04\0\0\0\0\0\0\0".to_vec(),
            "data_before_fmt",
        ),
        (
            {
                let spec = WavSpec::pcm(2, 44_100, 16);
                let mut b = wav_bytes(&spec, &[]);
                let fmt = crate::fixture::fmt_body(&spec);
                // A second fmt chunk before data.
                let at = b.len() - 8;
                let mut extra = b"fmt ".to_vec();
                extra.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
                extra.extend_from_slice(&fmt);
                b.splice(at..at, extra);
                b
            },
            "duplicate_fmt",
        ),
        (
            {
                let mut spec = WavSpec::pcm(2, 44_100, 16);
                spec.extensible_mask = Some(3);
                let mut fmt = crate::fixture::fmt_body(&spec);
                set_u16(&mut fmt, 16, 0);
                wav_with_fmt(&spec, &fmt, &[])
            },
            "bad_extensible",
        ),
        (
            {
                let mut spec = WavSpec::pcm(2, 44_100, 16);
                spec.extensible_mask = Some(3);
                let mut fmt = crate::fixture::fmt_body(&spec);
                set_u16(&mut fmt, 16, 26);
                wav_with_fmt(&spec, &fmt, &[])
            },
            "bad_extensible",
        ),
    ];
    for (bytes, code) in cases {
        let err = parse(&bytes).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(err.kind(), WavErrorKind::Malformed, "{err}");
    }
}

#[test]
fn a_missing_pad_byte_is_tolerated() {
    let data = pcm_bytes(&test_signal(8, 1, 16, 4), 16);
    let mut spec = WavSpec::pcm(1, 8_000, 16);
    spec.chunks_before_data = vec![(*b"LIST", vec![7; 5])];
    let with_pad = wav_bytes(&spec, &data);
    // Drop the pad byte after the 5-byte LIST body.
    let at = with_pad.windows(4).position(|w| w == b"LIST").unwrap() + 8 + 5;
    assert_eq!(with_pad[at], 0);
    let mut without_pad = with_pad.clone();
    without_pad.remove(at);
    for bytes in [with_pad, without_pad] {
        for split in [1, 3, 1000] {
            let pieces: Vec<&[u8]> = bytes.chunks(split).collect();
            assert_eq!(parse_pieces(&pieces).unwrap().1, data);
        }
    }
}

#[test]
fn misaligned_chunks_are_malformed_not_oversized() {
    let mut bytes = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &[0; 4]);
    // Two stray bytes after fmt shift every later chunk header.
    bytes.splice(36..36, [0u8, 0]);
    let err = parse(&bytes).unwrap_err();
    assert_eq!(err.code(), "bad_chunk_id");
    assert_eq!(err.kind(), WavErrorKind::Malformed);
}

#[test]
fn junk_is_refused_after_four_bytes() {
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(parser.next(&mut &b"hel"[..]), Ok(None));
    assert_eq!(parser.next(&mut &b"lo"[..]), Err(WavError::NotRiff));
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(
        parser.next(&mut &b"RF64"[..]),
        Err(WavError::UnsupportedContainer)
    );
}

#[test]
fn truncated_header_is_reported_at_finish() {
    let bytes = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &[0; 4]);
    for cut in 0..44 {
        let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
        let mut rest = &bytes[..cut];
        while parser.next(&mut rest).unwrap().is_some() {}
        assert_eq!(parser.finish(), Err(WavError::TruncatedHeader), "cut {cut}");
    }
}

#[test]
fn unsupported_formats_get_their_codes() {
    let float = fmt_with(|f| set_u16(f, 0, 3));
    let alaw = fmt_with(|f| set_u16(f, 0, 6));
    let mulaw = fmt_with(|f| set_u16(f, 0, 7));
    let adpcm = fmt_with(|f| set_u16(f, 0, 2));
    let bits32 = fmt_with(|f| {
        set_u16(f, 12, 8);
        set_u16(f, 14, 32);
    });
    let nine = fmt_with(|f| {
        set_u16(f, 2, 9);
        set_u16(f, 12, 18);
    });
    let fast = fmt_with(|f| f[4..8].copy_from_slice(&700_000u32.to_le_bytes()));
    let odd_hi_res = fmt_with(|f| f[4..8].copy_from_slice(&88_201u32.to_le_bytes()));
    let mut rifx = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &[]);
    rifx[..4].copy_from_slice(b"RIFX");
    let cases = [
        (float, "unsupported_format"),
        (alaw, "unsupported_format"),
        (mulaw, "unsupported_format"),
        (adpcm, "unsupported_format"),
        (bits32, "unsupported_bit_depth"),
        (nine, "too_many_channels"),
        (fast, "unsupported_sample_rate"),
        (odd_hi_res, "unsupported_sample_rate"),
        (rifx, "unsupported_container"),
    ];
    for (bytes, code) in cases {
        let err = parse(&bytes).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(err.kind(), WavErrorKind::Unsupported, "{err}");
    }
}

#[test]
fn a_huge_declared_chunk_is_skipped_not_buffered_and_bounded() {
    let mut bytes = b"RIFF\xff\xff\xff\xffWAVEJUNK".to_vec();
    bytes.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let mut parser = WavParser::new(1024);
    let err = parser.next(&mut bytes.as_slice()).unwrap_err();
    assert_eq!(err.code(), "header_too_large");
    assert_eq!(err.kind(), WavErrorKind::TooLarge);

    // Under the cap, a large chunk streams past without being stored.
    let mut spec = WavSpec::pcm(1, 8_000, 16);
    spec.chunks_before_data = vec![(*b"JUNK", vec![0; 100_000])];
    let bytes = wav_bytes(&spec, &[1, 2]);
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    for piece in bytes.chunks(1000) {
        let mut rest = piece;
        while parser.next(&mut rest).unwrap().is_some() {}
        assert!(parser.scratch.capacity() <= MAX_FMT_CHUNK_BYTES as usize);
    }
    assert!(parser.is_done());
}

#[test]
fn every_accepted_rate_fits_a_frame_header() {
    for rate in [1, 7, 44_100, 65_535, 65_540, 88_200, 384_000, 655_350] {
        assert!(frame_header_can_state(rate), "{rate}");
    }
    for rate in [0, 65_537, 88_201, 655_360, 1_000_000] {
        assert!(!frame_header_can_state(rate), "{rate}");
    }
}

#[test]
fn unread_bytes_count_again_against_the_declared_length() {
    let data = pcm_bytes(&test_signal(100, 1, 16, 5), 16);
    let bytes = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &data);
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    let mut rest = &bytes[..44 + 60];
    let mut audio = Vec::new();
    while let Some(event) = parser.next(&mut rest).unwrap() {
        if let WavEvent::Audio(a) = event {
            audio.extend_from_slice(a);
        }
    }
    assert_eq!(audio.len(), 60);
    // The last 20 bytes were never used; they come again.
    parser.unread(20);
    let mut rest = &data[40..];
    let mut more = Vec::new();
    let mut ended = false;
    while let Some(event) = parser.next(&mut rest).unwrap() {
        match event {
            WavEvent::Audio(a) => more.extend_from_slice(a),
            WavEvent::DataEnd => ended = true,
            WavEvent::Format(_) => unreachable!(),
        }
    }
    assert_eq!(more, &data[40..]);
    assert!(ended);
}
