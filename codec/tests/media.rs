//! Every container and codec `media::MediaDecoder` takes, made at test time
//! from generated PCM with the encoders Debian ships
//! (`fixture::encoded`), decoded and compared: lossless sources sample for
//! sample with the PCM they were made from, lossy ones against ffmpeg's own
//! decode (the gapless sample count, and an SNR bound). A missing tool
//! skips its cases and says so.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

use std::path::Path;

use flacstream_codec::fixture::encoded::{
    ffmpeg_decode, have, lossy_signal, opusdec_decode, snr_db, Encoding, Scratch,
};
use flacstream_codec::fixture::{fmt_body, test_signal, wav_with_fmt, WavSpec};
use flacstream_codec::g711::Law;
use flacstream_codec::media::{MediaDecoder, MediaError, MediaInfo, SourceCodec};

/// Decodes a file to the end: what it is and its samples (signed, at the
/// stored width).
fn decode(path: &Path) -> Result<(MediaInfo, Vec<i32>), MediaError> {
    let file = std::fs::File::open(path).unwrap();
    let mut decoder = MediaDecoder::open(Box::new(file))?;
    let info = decoder.info();
    let mut bytes = Vec::new();
    while decoder.next_pcm(&mut bytes)? {}
    Ok((info, samples_of(&bytes, info.layout.bytes_per_sample)))
}

fn samples_of(bytes: &[u8], width: usize) -> Vec<i32> {
    assert_eq!(bytes.len() % width, 0);
    bytes
        .chunks(width)
        .map(|c| match width {
            1 => i32::from((c[0] ^ 0x80) as i8),
            2 => i32::from(i16::from_le_bytes([c[0], c[1]])),
            _ => i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8,
        })
        .collect()
}

#[test]
fn lossless_sources_decode_to_exactly_their_samples() {
    let dir = Scratch::new("media-lossless");
    for (channels, rate, bits) in [(2u16, 44_100u32, 16u16), (1, 48_000, 24), (2, 8_000, 8)] {
        let samples = test_signal(30_011, channels, bits, u64::from(rate));
        let spec = WavSpec::pcm(channels, rate, bits);
        let wav = dir.wav(&format!("src-{bits}.wav"), &samples, &spec);
        let cases: &[(Encoding, SourceCodec)] = &[
            (Encoding::Flac, SourceCodec::Flac),
            (Encoding::OggFlac, SourceCodec::Flac),
            (Encoding::AlacM4a, SourceCodec::Alac),
            (Encoding::AlacM4aFaststart, SourceCodec::Alac),
            (Encoding::Aiff, SourceCodec::Pcm),
            (Encoding::Caf, SourceCodec::Pcm),
            (Encoding::MkvFlac, SourceCodec::Flac),
        ];
        // Symphonia's own WAV reader too (the service parses WAV itself).
        let (info, got) = decode(&wav).unwrap();
        assert_eq!((info.codec, got == samples), (SourceCodec::Pcm, true));
        for &(encoding, codec) in cases {
            if bits == 8 && !matches!(encoding, Encoding::Aiff | Encoding::Caf) {
                continue; // FLAC, ALAC and ffmpeg's FLAC take 16 bits and more here
            }
            let Some(path) = encoding.make(&wav, bits, &dir) else {
                continue;
            };
            let name = format!("{encoding:?} {channels} ch {rate} Hz {bits} bits");
            if encoding == Encoding::Caf && bits == 8 {
                // symphonia's CAF reader takes 16- to 32-bit integer PCM only.
                let e = decode(&path).unwrap_err();
                assert_eq!(e.code(), "unsupported_codec", "{name}: {e}");
                continue;
            }
            let (info, got) = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(info.codec, codec, "{name}");
            assert!(info.lossless(), "{name}");
            assert_eq!(
                (info.sample_rate, info.layout.channels),
                (rate, usize::from(channels))
            );
            assert_eq!(info.layout.bits_per_sample(), usize::from(bits), "{name}");
            assert_eq!(got.len(), samples.len(), "{name}: sample count");
            assert!(got == samples, "{name}: samples differ");
        }
    }
}

#[test]
fn g711_expands_as_ffmpeg_does() {
    let dir = Scratch::new("media-g711");
    let samples = test_signal(16_000, 1, 16, 7);
    let wav = dir.wav("src.wav", &samples, &WavSpec::pcm(1, 8_000, 16));
    for (encoding, codec) in [
        (Encoding::AlawWav, SourceCodec::Alaw),
        (Encoding::MulawWav, SourceCodec::Mulaw),
    ] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            return;
        };
        let (info, got) = decode(&path).unwrap();
        assert_eq!((info.codec, info.layout.bytes_per_sample), (codec, 2));
        assert!(info.lossless());
        let reference: Vec<i32> = ffmpeg_decode(&path)
            .iter()
            .map(|f| (f * 32_768.0).round() as i32)
            .collect();
        assert_eq!(got, reference, "{encoding:?}");
    }
}

#[test]
fn every_g711_code_expands_as_ffmpeg_expands_it() {
    if !have("ffmpeg") {
        return;
    }
    let dir = Scratch::new("media-g711-codes");
    for (tag, law) in [(6u8, Law::Alaw), (7, Law::Mulaw)] {
        let spec = WavSpec::pcm(1, 8_000, 8);
        let mut fmt = fmt_body(&spec);
        fmt[0] = tag;
        let codes: Vec<u8> = (0..=255).collect();
        let path = dir.path(&format!("codes-{tag}.wav"));
        std::fs::write(&path, wav_with_fmt(&spec, &fmt, &codes)).unwrap();
        let reference: Vec<i16> = ffmpeg_decode(&path)
            .iter()
            .map(|f| (f * 32_768.0).round() as i16)
            .collect();
        let ours: Vec<i16> = codes.iter().map(|c| law.expand_one(*c)).collect();
        assert_eq!(ours, reference, "{law:?}");
    }
}

#[test]
fn lossy_sources_match_ffmpegs_decode_with_gapless_counts() {
    const FRAMES: usize = 100_000;
    /// SNR of our 24-bit decode against ffmpeg's float decode: measured
    /// 124.7 (MP3) to 136.3 dB (Vorbis), the 24-bit rounding and the
    /// decoders' own rounding; any content difference would be far lower.
    const MIN_SNR_DB: f64 = 110.0;
    if !have("ffmpeg") {
        return;
    }
    let dir = Scratch::new("media-lossy");
    let wav = dir.wav(
        "src.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 44_100, 16),
    );
    // The frames a gapless decode gives: the source's, where the container
    // declares the encoder's delay and padding; else every decoded frame,
    // as ffmpeg gives them.
    let cases = [
        (Encoding::Mp3, SourceCodec::Mp3, Some(FRAMES)),
        (Encoding::OggVorbis, SourceCodec::Vorbis, Some(FRAMES)),
        (Encoding::AacM4a, SourceCodec::Aac, Some(FRAMES)),
        (Encoding::AacAdts, SourceCodec::Aac, None),
        // Fragmented: no media duration to trim the end by; the priming
        // goes, as with ffmpeg.
        (Encoding::AacM4aFragmented, SourceCodec::Aac, None),
        (Encoding::WebmVorbis, SourceCodec::Vorbis, None),
    ];
    for (encoding, codec, frames) in cases {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let name = format!("{encoding:?}");
        let (info, got) = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.codec, codec, "{name}");
        assert!(!info.lossless());
        assert_eq!(info.layout.bytes_per_sample, 3);
        assert_eq!((info.sample_rate, info.layout.channels), (44_100, 2));
        let reference = ffmpeg_decode(&path);
        match frames {
            Some(n) => assert_eq!(got.len() / 2, n, "{name}: frames after gapless trimming"),
            None => assert_eq!(got.len(), reference.len(), "{name}: frames as ffmpeg's"),
        }
        // ffmpeg keeps an M4A's end padding (352 frames here); both start
        // at the same frame.
        assert!(reference.len() >= got.len(), "{name}");
        let snr = snr_db(&got, 24, &reference);
        eprintln!(
            "{name}: {} frames (ffmpeg {}), SNR against ffmpeg {snr:.1} dB",
            got.len() / 2,
            reference.len() / 2
        );
        assert!(snr >= MIN_SNR_DB, "{name}: SNR {snr:.1} dB");
    }
}

#[test]
fn opus_matches_libopus_decode() {
    /// Against `opusdec --float` (libopus 1.3.1): opus-pure measured
    /// 138-142 dB on CELT, SILK and hybrid streams.
    const MIN_SNR_DB: f64 = 110.0;
    let dir = Scratch::new("media-opus");
    let wav = dir.wav(
        "src.wav",
        &lossy_signal(96_000),
        &WavSpec::pcm(2, 48_000, 16),
    );
    for encoding in [Encoding::OggOpus, Encoding::WebmOpus] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let Some(reference) = opusdec_decode(&path, &dir) else {
            return;
        };
        let name = format!("{encoding:?}");
        let (info, got) = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.codec, SourceCodec::Opus);
        assert!(!info.lossless());
        assert_eq!((info.sample_rate, info.layout.channels), (48_000, 2));
        let snr = snr_db(&got, 24, &reference);
        eprintln!(
            "{name}: {} frames (opusdec {}), SNR against libopus {snr:.1} dB",
            got.len() / 2,
            reference.len() / 2
        );
        // The same count as libopus's: pre-skip and (Ogg) end trimming;
        // WebM's end padding is kept, as ffmpeg's remux to Ogg keeps it.
        assert_eq!(got.len(), reference.len(), "{name}: gapless frames");
        assert!(snr >= MIN_SNR_DB, "{name}: SNR {snr:.1} dB");
    }
}

#[test]
fn surround_opus_decodes_with_the_standard_mapping() {
    let dir = Scratch::new("media-opus-51");
    // Six different channels, none near full scale (clipping would measure
    // the clamp, not the decoder).
    let stereo = lossy_signal(9_600);
    let samples: Vec<i32> = stereo
        .chunks(2)
        .flat_map(|f| [f[0], f[1], f[0] / 2, f[1] / 3, (f[0] + f[1]) / 3, f[0] / 4])
        .collect();
    let wav = dir.wav("src.wav", &samples, &WavSpec::pcm(6, 48_000, 16));
    let Some(path) = Encoding::OggOpus.make(&wav, 16, &dir) else {
        return;
    };
    let Some(reference) = opusdec_decode(&path, &dir) else {
        return;
    };
    let (info, got) = decode(&path).unwrap();
    assert_eq!(info.layout.channels, 6);
    assert_eq!(got.len(), reference.len());
    let snr = snr_db(&got, 24, &reference);
    assert!(snr >= 100.0, "5.1 Opus: SNR {snr:.1} dB against libopus");
}

#[test]
fn what_cannot_be_decoded_is_refused_with_its_code() {
    let dir = Scratch::new("media-bad");
    let garbage = dir.path("garbage.bin");
    std::fs::write(&garbage, b"definitely not audio at all, not even close").unwrap();
    assert_eq!(decode(&garbage).unwrap_err(), MediaError::Unrecognized);
    let empty = dir.path("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(decode(&empty).is_err());
    if !have("ffmpeg") {
        return;
    }
    let samples = lossy_signal(20_000);
    let wav = dir.wav("src.wav", &samples, &WavSpec::pcm(2, 44_100, 16));
    // Float PCM: FLAC holds integers only.
    let float = dir.path("float.aiff");
    std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-c:a", "pcm_f32be"])
        .arg(&float)
        .status()
        .unwrap();
    assert_eq!(decode(&float).unwrap_err(), MediaError::FloatPcm);
    // A video with no audio track.
    let video = dir.path("video.mp4");
    std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=duration=1:size=64x64:rate=10")
        .args(["-c:v", "mpeg4"])
        .arg(&video)
        .status()
        .unwrap();
    assert_eq!(decode(&video).unwrap_err(), MediaError::NoAudioTrack);
    // Truncated and corrupted lossless files: an error, never short audio.
    if let Some(flac) = Encoding::Flac.make(&wav, 16, &dir) {
        let bytes = std::fs::read(&flac).unwrap();
        let cut = dir.path("cut.flac");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = decode(&cut).unwrap_err();
        assert!(e.is_malformed(), "{e}");
    }
}
