use super::*;
use crate::fixture::{pcm_bytes, test_signal};
use crate::pcm::PcmDecoder;

/// Encodes `samples` as a whole stream, final STREAMINFO patched in, the way
/// a session does; returns the stream and its frame statistics.
fn encode_stream(format: StreamFormat, level: u8, samples: &[i32]) -> (Vec<u8>, FrameStats) {
    let level = EncoderLevel::new(level).unwrap();
    let mut out = StreamInfo::provisional(format).stream_header();
    let mut stats = FrameStats::default();
    let mut encoder = FrameEncoder::new();
    let per_block = format.block_size * format.layout.channels;
    for (n, block) in samples.chunks(per_block).enumerate() {
        let frame = encoder.encode(&format, level, n as u32, block).unwrap();
        stats.record(&frame);
        out.extend_from_slice(&frame.bytes);
    }
    let mut decoder = PcmDecoder::new(format.layout);
    let bytes = pcm_bytes(samples, format.layout.bits_per_sample() as u16);
    let mut decoded = vec![0; samples.len()];
    decoder.decode(&mut bytes.as_slice(), &mut decoded);
    assert_eq!(decoded, samples, "fixture round trip");
    let info = StreamInfo {
        format,
        min_frame_bytes: stats.min_frame_bytes,
        max_frame_bytes: stats.max_frame_bytes,
        total_samples: decoder.frames_decoded(),
        md5: decoder.md5_digest(),
    };
    out[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES].copy_from_slice(&info.to_bytes());
    (out, stats)
}

/// Decodes with claxon and compares every sample, naming the first mismatch.
fn assert_decodes_to(flac: &[u8], format: &StreamFormat, samples: &[i32]) {
    let mut reader = claxon::FlacReader::new(flac).expect("claxon reads the header");
    let info = reader.streaminfo();
    assert_eq!(info.sample_rate, format.sample_rate);
    assert_eq!(info.channels as usize, format.layout.channels);
    assert_eq!(
        info.bits_per_sample as usize,
        format.layout.bits_per_sample()
    );
    let channels = format.layout.channels;
    assert_eq!(info.samples, Some((samples.len() / channels) as u64));
    let decoded: Vec<i32> = reader
        .samples()
        .map(|s| s.expect("claxon decodes"))
        .collect();
    assert_eq!(decoded.len(), samples.len(), "sample count");
    if let Some(i) = decoded.iter().zip(samples).position(|(a, b)| a != b) {
        panic!(
            "sample {} channel {} (block {}) decoded {} expected {}",
            i / channels,
            i % channels,
            i / channels / format.block_size,
            decoded[i],
            samples[i]
        );
    }
}

fn format(rate: u32, channels: usize, bytes: usize, block: usize) -> StreamFormat {
    StreamFormat {
        sample_rate: rate,
        layout: PcmLayout {
            channels,
            bytes_per_sample: bytes,
        },
        block_size: block,
    }
}

#[test]
fn every_width_channel_count_and_level_round_trips() {
    for (rate, channels, bytes) in [
        (44_100, 2, 2),
        (8_000, 1, 1),
        (48_000, 6, 3),
        (22_050, 8, 2),
    ] {
        for level in 0..=MAX_LEVEL {
            let f = format(rate, channels, bytes, 1024);
            let samples = test_signal(3000, channels as u16, (bytes * 8) as u16, level.into());
            let (flac, _) = encode_stream(f, level, &samples);
            assert_decodes_to(&flac, &f, &samples);
        }
    }
}

#[test]
fn rates_beyond_flacenc_and_odd_rates_round_trip() {
    for rate in [
        1, 7, 88_200, 96_000, 176_400, 192_000, 352_800, 384_000, 655_350,
    ] {
        let f = format(rate, 2, 3, 4096);
        let samples = test_signal(5000, 2, 24, u64::from(rate));
        let (flac, _) = encode_stream(f, 5, &samples);
        assert_decodes_to(&flac, &f, &samples);
    }
}

#[test]
fn short_final_blocks_round_trip() {
    for frames in [1, 2, 31, 32, 33, 1025] {
        let f = format(16_000, 2, 2, 1024);
        let samples = test_signal(frames, 2, 16, frames as u64);
        let (flac, _) = encode_stream(f, 5, &samples);
        assert_decodes_to(&flac, &f, &samples);
    }
}

#[test]
fn no_frame_is_larger_than_verbatim() {
    // Loud 24-bit audio whose residuals need a Rice parameter above
    // flacenc's cap of 14: flacenc's own frame exceeds verbatim.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let f = format(96_000, 2, 3, 4096);
    let samples: Vec<i32> = (0..4096 * 8)
        .flat_map(|t| {
            let tone = ((t as f64 * 0.002).sin() * 6_000_000.0) as i32;
            let a = tone + rng.random_range(-(1 << 21)..(1 << 21));
            let b = -tone + rng.random_range(-(1 << 20)..(1 << 20));
            [a, b]
        })
        .collect();
    // Verbatim: header (≤ 16 bytes) + 2 × (1 + 3 × 4096) + CRC.
    let bound = 16 + 2 * (1 + 3 * 4096) + 2;
    let mut fallbacks = 0;
    for level in 0..=MAX_LEVEL {
        let (flac, stats) = encode_stream(f, level, &samples);
        assert_decodes_to(&flac, &f, &samples);
        assert!(
            stats.max_frame_bytes as usize <= bound,
            "{level}: {stats:?}"
        );
        fallbacks += stats.verbatim_fallbacks;
    }
    assert!(fallbacks > 0, "the fallback was exercised at some level");
}

/// 4096 samples of a slow sine of `amplitude`, and the same with uniform
/// noise below `noise` added: a stereo pair whose side channel is the noise.
fn smooth_and_noisy(amplitude: f64, noise: i32) -> (Vec<i32>, Vec<i32>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let smooth: Vec<i32> = (0..4096)
        .map(|t| ((t as f64 * 0.01).sin() * amplitude) as i32)
        .collect();
    let noisy = smooth
        .iter()
        .map(|s| s + rng.random_range(-noise..noise))
        .collect();
    (smooth, noisy)
}

#[test]
fn every_stereo_pair_round_trips() {
    // A smooth channel and a copy of it with noise added: the side channel
    // is only the noise, so the estimate picks smooth + side.
    let (smooth, noisy) = smooth_and_noisy(20_000.0, 300);
    let f = format(44_100, 2, 2, 1024);
    // Frame header byte 3, high nibble: 8 left/side, 9 right/side, 10 mid/side.
    for (left, right, assignment) in [(&smooth, &noisy, 8), (&noisy, &smooth, 9)] {
        let samples: Vec<i32> = left.iter().zip(right).flat_map(|(l, r)| [*l, *r]).collect();
        for level in 0..=MAX_LEVEL {
            let (flac, _) = encode_stream(f, level, &samples);
            assert_decodes_to(&flac, &f, &samples);
            let first_frame = STREAMINFO_OFFSET + STREAMINFO_BYTES;
            let nibble = flac[first_frame + 3] >> 4;
            let expected = match EncoderLevel::new(level).unwrap().plan(16).stereo {
                StereoSearch::Independent => 1,
                StereoSearch::MidSide => 10,
                StereoSearch::Estimated | StereoSearch::Exhaustive => assignment,
            };
            assert_eq!(nibble, expected, "level {level}");
        }
    }
}

#[test]
fn rejects_bad_blocks_without_panicking() {
    let f = format(44_100, 2, 2, 1024);
    let mut e = FrameEncoder::new();
    let level = EncoderLevel::default();
    assert!(matches!(
        e.encode(&f, level, 0, &[]),
        Err(FlacError::BadBlock { .. })
    ));
    assert!(matches!(
        e.encode(&f, level, 0, &[1, 2, 3]),
        Err(FlacError::BadBlock { .. })
    ));
    let too_big = vec![0; (MAX_BLOCK_SIZE + 1) * 2];
    assert!(matches!(
        e.encode(&f, level, 0, &too_big),
        Err(FlacError::BadBlock { .. })
    ));
    let out_of_range = vec![40_000; 64];
    assert!(matches!(
        e.encode(&f, level, 0, &out_of_range),
        Err(FlacError::SampleOutOfRange { bits: 16, .. })
    ));
    // Only the right channel is out of range; a side channel would hide it.
    for level in 0..=MAX_LEVEL {
        let level = EncoderLevel::new(level).unwrap();
        let block: Vec<i32> = (0..64).flat_map(|_| [0, -40_000]).collect();
        assert!(matches!(
            e.encode(&f, level, 0, &block),
            Err(FlacError::SampleOutOfRange { channel: 1, .. })
        ));
    }
    // A different channel count after use must not trip flacenc's buffer.
    let mono = format(44_100, 1, 2, 1024);
    e.encode(&f, level, 0, &vec![0; 2048]).unwrap();
    e.encode(&mono, level, 0, &vec![0; 1024]).unwrap();
}

#[test]
fn stream_header_layout_is_fixed() {
    let f = format(44_100, 2, 2, 4096);
    let header = StreamInfo::provisional(f).stream_header();
    assert_eq!(&header[..4], b"fLaC");
    assert_eq!(header[4], 0x80);
    assert_eq!(&header[5..8], &[0, 0, 34]);
    assert_eq!(header.len(), STREAMINFO_OFFSET + STREAMINFO_BYTES);
}

#[test]
fn streaminfo_parses_back() {
    let info = StreamInfo {
        format: format(192_000, 6, 3, 16_384),
        min_frame_bytes: 17,
        max_frame_bytes: 0xAB_CDEF,
        total_samples: 0xF_1234_5678,
        md5: [7; 16],
    };
    assert_eq!(StreamInfo::parse(&info.to_bytes()), Some(info));
}

/// `samples` with every sample shifted left by `shift` bits.
fn padded(samples: &[i32], shift: u32) -> Vec<i32> {
    samples.iter().map(|s| s << shift).collect()
}

/// Allowed growth of a padded stream over the same audio at its real width:
/// flacenc's choices shift a little with the declared width (levels 0–2 use
/// an LPC above 16 bits, for one). Without wasted bits it is 1.5 to 2 times.
const PADDED_SIZE_TOLERANCE: f64 = 1.03;

#[test]
fn padded_16_bit_audio_is_as_small_as_16_bit() {
    let music = test_signal(20_000, 2, 16, 11);
    let wide = padded(&music, 8);
    for level in 0..=MAX_LEVEL {
        let (narrow_flac, _) = encode_stream(format(44_100, 2, 2, 4096), level, &music);
        let f = format(44_100, 2, 3, 4096);
        let (flac, stats) = encode_stream(f, level, &wide);
        assert_decodes_to(&flac, &f, &wide);
        assert_eq!(stats.verbatim_fallbacks, 0, "level {level}");
        let limit = narrow_flac.len() as f64 * PADDED_SIZE_TOLERANCE;
        assert!(
            flac.len() as f64 <= limit,
            "level {level}: 24-bit padded {} bytes, 16-bit {} bytes",
            flac.len(),
            narrow_flac.len()
        );
    }
}

#[test]
fn padded_8_bit_audio_is_as_small_as_8_bit() {
    // Mono goes through flacenc whole when nothing is wasted; six channels
    // through the multichannel path.
    for channels in [1, 6] {
        let audio = test_signal(10_000, channels as u16, 8, 5);
        let wide = padded(&audio, 8);
        for level in 0..=MAX_LEVEL {
            let (narrow_flac, _) = encode_stream(format(22_050, channels, 1, 1024), level, &audio);
            let f = format(22_050, channels, 2, 1024);
            let (flac, _) = encode_stream(f, level, &wide);
            assert_decodes_to(&flac, &f, &wide);
            let limit = narrow_flac.len() as f64 * PADDED_SIZE_TOLERANCE;
            assert!(
                flac.len() as f64 <= limit,
                "{channels} channels, level {level}: {} bytes, 8-bit {} bytes",
                flac.len(),
                narrow_flac.len()
            );
        }
    }
}

/// Stereo 24-bit blocks of 1024 frames, each with different wasted bits:
/// none, 8 in both channels, 1 (all even), 8 in the left channel only, 23
/// (only 0 and −2^23), silence, silence beside a wasted channel, and a
/// constant with 12 wasted bits.
fn mixed_wasted_blocks() -> Vec<i32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let music = test_signal(1024, 2, 24, 23);
    let quiet = test_signal(1024, 2, 16, 29);
    let blocks: Vec<Vec<i32>> = vec![
        music.clone(),
        padded(&quiet, 8),
        music.iter().map(|s| s & !1).collect(),
        music
            .chunks(2)
            .zip(quiet.chunks(2))
            .flat_map(|(m, q)| [q[0] << 8, m[1]])
            .collect(),
        (0..2048)
            .map(|_| if rng.random_bool(0.5) { -(1 << 23) } else { 0 })
            .collect(),
        vec![0; 2048],
        quiet.chunks(2).flat_map(|q| [0, q[1] << 8]).collect(),
        vec![3 << 12; 2048],
    ];
    blocks.concat()
}

#[test]
fn blocks_with_any_wasted_bits_round_trip_at_every_level() {
    let f = format(48_000, 2, 3, 1024);
    let samples = mixed_wasted_blocks();
    for level in 0..=MAX_LEVEL {
        let (flac, _) = encode_stream(f, level, &samples);
        assert_decodes_to(&flac, &f, &samples);
    }
    // The same blocks as six channels (three stereo blocks side by side).
    let f = format(48_000, 6, 3, 1024);
    let six: Vec<i32> = samples
        .chunks(2048)
        .collect::<Vec<_>>()
        .chunks(3)
        .filter(|group| group.len() == 3)
        .flat_map(|group| {
            (0..1024).flat_map(move |t| group.iter().flat_map(move |b| [b[2 * t], b[2 * t + 1]]))
        })
        .collect();
    for level in [0, 5, 8] {
        let (flac, _) = encode_stream(f, level, &six);
        assert_decodes_to(&flac, &f, &six);
    }
}

#[test]
fn the_largest_shift_leaves_one_bit() {
    // 23 wasted bits of 24 in both channels: one-bit subframes.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let f = format(44_100, 2, 3, 4096);
    let samples: Vec<i32> = (0..4096 * 2)
        .map(|_| if rng.random_bool(0.5) { -(1 << 23) } else { 0 })
        .collect();
    for level in 0..=MAX_LEVEL {
        let (flac, _) = encode_stream(f, level, &samples);
        assert_decodes_to(&flac, &f, &samples);
        // At most two bits per sample of 24 (mid and side take two: their
        // values are 0, ±2^22 and ±2^23), against over 24 without them.
        assert!(
            flac.len() < 4096 * 2 * 2 / 8 + 200,
            "level {level}: {}",
            flac.len()
        );
    }
}

#[test]
fn every_stereo_pair_round_trips_with_wasted_bits() {
    // As `every_stereo_pair_round_trips`, shifted left by 1 and by 4 bits:
    // with 1, mid (which drops a bit of left + right) has none.
    let (smooth, noisy) = smooth_and_noisy(2_000.0, 30);
    let f = format(44_100, 2, 2, 1024);
    for shift in [1, 4] {
        for (left, right, assignment) in [(&smooth, &noisy, 8), (&noisy, &smooth, 9)] {
            let samples: Vec<i32> = left
                .iter()
                .zip(right)
                .flat_map(|(l, r)| [l << shift, r << shift])
                .collect();
            for level in 0..=MAX_LEVEL {
                let (flac, _) = encode_stream(f, level, &samples);
                assert_decodes_to(&flac, &f, &samples);
                let first_frame = STREAMINFO_OFFSET + STREAMINFO_BYTES;
                let nibble = flac[first_frame + 3] >> 4;
                let expected = match EncoderLevel::new(level).unwrap().plan(16).stereo {
                    StereoSearch::Independent => 1,
                    StereoSearch::MidSide => 10,
                    StereoSearch::Estimated | StereoSearch::Exhaustive => assignment,
                };
                assert_eq!(nibble, expected, "shift {shift} level {level}");
            }
        }
    }
}
