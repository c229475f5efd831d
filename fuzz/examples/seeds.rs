//! Writes the seed corpus: `fuzz/corpus/ingest/` and `fuzz/corpus/wav_header/`.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Every seed is made here from the WAV and raw PCM layouts (no files from
//! elsewhere), deterministically, and named after what it holds. Each covers
//! one shape the service must take or refuse: every width, channel count up
//! to 8, extreme rates, WAVE_FORMAT_EXTENSIBLE, streaming sizes, odd chunks
//! with and without their pad byte, data shorter than declared, trailing
//! chunks, partial sample frames, and one seed per refusal. Files found by
//! fuzzing (crashes fixed since) sit beside them as `regression-*`.

use std::fs;
use std::path::Path;

use flacstream_codec::flac::EncoderLevel;
use flacstream_fuzz::plan::{IngestPlan, Input, SplitMode, Splits};

/// A chunk: id, body, and whether a pad byte follows an odd body.
struct Chunk {
    id: [u8; 4],
    body: Vec<u8>,
    pad: bool,
}

fn chunk(id: &[u8; 4], body: Vec<u8>) -> Chunk {
    Chunk {
        id: *id,
        body,
        pad: true,
    }
}

/// How a file declares its sizes.
#[derive(Clone, Copy)]
enum Sizes {
    Exact,
    /// `data` and RIFF sizes of 0xFFFFFFFF.
    StreamingMax,
    /// `data` and RIFF sizes of 0.
    StreamingZero,
    /// A `data` size of this many bytes, whatever follows.
    Declared(u32),
}

/// A WAV file: `fmt `, chunks, `data` with `audio`, chunks after it.
struct Wav {
    fmt: Vec<u8>,
    before: Vec<Chunk>,
    audio: Vec<u8>,
    after: Vec<Chunk>,
    sizes: Sizes,
}

impl Wav {
    fn new(fmt: Vec<u8>, audio: Vec<u8>) -> Self {
        Self {
            fmt,
            before: Vec::new(),
            audio,
            after: Vec::new(),
            sizes: Sizes::Exact,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        push(&mut body, &chunk(b"fmt ", self.fmt.clone()));
        for c in &self.before {
            push(&mut body, c);
        }
        let data_size = match self.sizes {
            Sizes::Exact => self.audio.len() as u32,
            Sizes::StreamingMax => u32::MAX,
            Sizes::StreamingZero => 0,
            Sizes::Declared(n) => n,
        };
        body.extend_from_slice(b"data");
        body.extend_from_slice(&data_size.to_le_bytes());
        body.extend_from_slice(&self.audio);
        if matches!(self.sizes, Sizes::Exact) && self.audio.len() % 2 == 1 {
            body.push(0);
        }
        for c in &self.after {
            push(&mut body, c);
        }
        let riff_size = match self.sizes {
            Sizes::StreamingMax => u32::MAX,
            Sizes::StreamingZero => 0,
            _ => body.len() as u32,
        };
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&riff_size.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn push(out: &mut Vec<u8>, c: &Chunk) {
    out.extend_from_slice(&c.id);
    out.extend_from_slice(&(c.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&c.body);
    if c.pad && c.body.len() % 2 == 1 {
        out.push(0);
    }
}

/// A 16-byte `fmt ` body with the given tag; block align from the bits.
fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits.div_ceil(8);
    let mut b = Vec::new();
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate.wrapping_mul(u32::from(align))).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b
}

fn pcm(channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    fmt(1, channels, rate, bits)
}

/// A 40-byte WAVE_FORMAT_EXTENSIBLE body.
fn extensible(channels: u16, rate: u32, bits: u16, valid: u16, mask: u32, sub: u16) -> Vec<u8> {
    let mut b = fmt(0xFFFE, channels, rate, bits);
    b.extend_from_slice(&22u16.to_le_bytes());
    b.extend_from_slice(&valid.to_le_bytes());
    b.extend_from_slice(&mask.to_le_bytes());
    b.extend_from_slice(&sub.to_le_bytes());
    b.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
    ]);
    b
}

/// What the samples sound like.
#[derive(Clone, Copy)]
enum Signal {
    /// A tone per channel with a little noise and both extremes now and then.
    Tone,
    /// Full-scale white noise: incompressible, so frames fall back to verbatim.
    Noise,
    /// All zero.
    Silence,
    /// 16-bit audio in a 24-bit container (the low byte is always zero).
    Padded16,
}

/// `frames` sample frames of `channels` × `bytes` bytes (8-bit unsigned).
fn audio(frames: usize, channels: usize, bytes: usize, signal: Signal, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as i64
    };
    let max = (1i64 << (8 * bytes - 1)) - 1;
    let min = -max - 1;
    let mut out = Vec::with_capacity(frames * channels * bytes);
    for t in 0..frames {
        for ch in 0..channels {
            let v = match signal {
                Signal::Tone => {
                    let phase = t as f64 * (0.02 + 0.007 * ch as f64);
                    let v = (phase.sin() * 0.7 * max as f64) as i64 + noise() % (max / 50 + 1);
                    match (t + ch) % 97 {
                        0 => max,
                        1 => min,
                        _ => v.clamp(min, max),
                    }
                }
                Signal::Noise => min + noise() % (max - min + 1),
                Signal::Silence => 0,
                Signal::Padded16 => {
                    let v = ((t as f64 * 0.05).sin() * 30_000.0) as i64 + noise() % 300;
                    v << 8
                }
            };
            match bytes {
                1 => out.push((v + 128) as u8),
                _ => out.extend_from_slice(&v.to_le_bytes()[..bytes]),
            }
        }
    }
    out
}

fn splits(mode: SplitMode, seed: u32) -> Splits {
    Splits { mode, seed }
}

const WHOLE: SplitMode = SplitMode::Whole;
const ONE: SplitMode = SplitMode::OneByte;
const IN_SAMPLE: SplitMode = SplitMode::Random { max: 3 };
const SMALL: SplitMode = SplitMode::Random { max: 16 };
const MEDIUM: SplitMode = SplitMode::Random { max: 256 };
const LARGE: SplitMode = SplitMode::Random { max: 8192 };

/// A WAV seed: the file and how the `ingest` target streams it.
struct WavSeed {
    name: &'static str,
    wav: Wav,
    split: Splits,
    level: u8,
    block: Option<usize>,
    /// The header-bound byte (see `plan::max_header_bytes`).
    header_byte: u8,
}

/// A raw PCM seed (`/api/ws/audio?format=u8|s16le|s24le`).
struct RawSeed {
    name: &'static str,
    channels: usize,
    bytes_per_sample: usize,
    rate: u32,
    frames: usize,
    signal: Signal,
    mode: SplitMode,
    block: Option<usize>,
}

/// Counts what was written.
struct Seeds {
    count: usize,
    bytes: usize,
}

impl Seeds {
    fn write(&mut self, dir: &Path, name: &str, bytes: &[u8]) {
        fs::write(dir.join(name), bytes).expect("write a seed");
        self.count += 1;
        self.bytes += bytes.len();
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let ingest_dir = root.join("ingest");
    let header_dir = root.join("wav_header");
    for dir in [&ingest_dir, &header_dir] {
        fs::create_dir_all(dir).expect("create the corpus folder");
        // Seeds are rewritten; regression files found by fuzzing are kept.
        for entry in fs::read_dir(dir).expect("read the corpus folder") {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("seed-") {
                fs::remove_file(&path).expect("remove an old seed");
            }
        }
    }
    let mut seeds = Seeds { count: 0, bytes: 0 };

    let mut wavs: Vec<WavSeed> = Vec::new();
    let mut add = |name, wav, split, level, block, header_byte| {
        wavs.push(WavSeed {
            name,
            wav,
            split,
            level,
            block,
            header_byte,
        });
    };
    use Signal::*;
    add(
        "pcm16-stereo-44100",
        Wav::new(pcm(2, 44_100, 16), audio(700, 2, 2, Tone, 1)),
        splits(WHOLE, 0),
        5,
        Some(256),
        0,
    );
    add(
        "pcm16-stereo-44100-default-block",
        Wav::new(pcm(2, 44_100, 16), audio(500, 2, 2, Tone, 2)),
        splits(MEDIUM, 2),
        0,
        None,
        0,
    );
    add(
        "pcm8-mono-8000-one-byte-messages",
        Wav::new(pcm(1, 8_000, 8), audio(900, 1, 1, Tone, 3)),
        splits(ONE, 0),
        2,
        Some(64),
        0,
    );
    add(
        "pcm24-6ch-48000",
        Wav::new(pcm(6, 48_000, 24), audio(300, 6, 3, Tone, 4)),
        splits(IN_SAMPLE, 4),
        8,
        Some(256),
        0,
    );
    add(
        "pcm16-8ch-22050-odd-block",
        Wav::new(pcm(8, 22_050, 16), audio(260, 8, 2, Tone, 5)),
        splits(SMALL, 5),
        3,
        Some(100),
        0,
    );
    add(
        "extensible-24-stereo-96000",
        Wav::new(
            extensible(2, 96_000, 24, 24, 3, 1),
            audio(400, 2, 3, Tone, 6),
        ),
        splits(SMALL, 6),
        7,
        Some(128),
        0,
    );
    add(
        "extensible-20-in-24-mono-192000",
        Wav::new(
            extensible(1, 192_000, 24, 20, 4, 1),
            audio(700, 1, 3, Padded16, 7),
        ),
        splits(MEDIUM, 7),
        5,
        Some(1024),
        0,
    );
    add(
        "extensible-12-in-16-3ch-any-mask",
        Wav::new(
            extensible(3, 32_000, 16, 12, 0xFFFF_FFFF, 1),
            audio(300, 3, 2, Tone, 8),
        ),
        splits(IN_SAMPLE, 8),
        4,
        Some(64),
        0,
    );
    let mut w = Wav::new(pcm(2, 48_000, 16), audio(600, 2, 2, Tone, 9));
    w.sizes = Sizes::StreamingMax;
    add(
        "streaming-size-ffffffff",
        w,
        splits(MEDIUM, 9),
        1,
        Some(128),
        0,
    );
    let mut w = Wav::new(pcm(1, 16_000, 16), audio(800, 1, 2, Tone, 10));
    w.sizes = Sizes::StreamingZero;
    add("streaming-size-zero", w, splits(LARGE, 10), 5, None, 0);
    let mut w = Wav::new(pcm(2, 44_100, 16), audio(400, 2, 2, Tone, 11));
    w.sizes = Sizes::Declared(100_000);
    add(
        "data-shorter-than-declared",
        w,
        splits(SMALL, 11),
        5,
        Some(64),
        0,
    );
    let mut w = Wav::new(pcm(3, 44_100, 24), audio(200, 3, 3, Tone, 12));
    w.audio.extend_from_slice(&[1, 2, 3, 4, 5]);
    add(
        "partial-frame-at-the-end",
        w,
        splits(IN_SAMPLE, 12),
        5,
        Some(64),
        0,
    );
    let mut w = Wav::new(pcm(1, 8_000, 8), audio(301, 1, 1, Tone, 13));
    w.before
        .push(chunk(b"LIST", b"INFOISFT\x05\0\0\0odd!\0x".to_vec()));
    w.after.push(chunk(b"id3 ", vec![7; 33]));
    add(
        "odd-chunks-padded-and-trailing",
        w,
        splits(ONE, 13),
        5,
        Some(32),
        0,
    );
    let mut w = Wav::new(pcm(2, 11_025, 16), audio(300, 2, 2, Tone, 14));
    w.before.push(Chunk {
        id: *b"junk",
        body: vec![0x55; 7],
        pad: false,
    });
    w.before.push(Chunk {
        id: *b"bext",
        body: vec![0; 3],
        pad: false,
    });
    add(
        "odd-chunks-missing-pad",
        w,
        splits(SMALL, 14),
        5,
        Some(64),
        0,
    );
    let mut w = Wav::new(pcm(2, 44_100, 16), Vec::new());
    w.after.push(chunk(b"LIST", b"INFO".to_vec()));
    add("empty-data", w, splits(WHOLE, 0), 5, None, 0);
    add(
        "rate-655350",
        Wav::new(pcm(2, 655_350, 16), audio(500, 2, 2, Tone, 15)),
        splits(MEDIUM, 15),
        5,
        None,
        0,
    );
    add(
        "rate-1",
        Wav::new(pcm(1, 1, 16), audio(100, 1, 2, Tone, 16)),
        splits(SMALL, 16),
        5,
        None,
        0,
    );
    add(
        "rate-65535-24bit",
        Wav::new(pcm(1, 65_535, 24), audio(400, 1, 3, Tone, 17)),
        splits(MEDIUM, 17),
        6,
        Some(200),
        0,
    );
    add(
        "wasted-bits-16-in-24-stereo",
        Wav::new(pcm(2, 48_000, 24), audio(600, 2, 3, Padded16, 18)),
        splits(MEDIUM, 18),
        5,
        Some(256),
        0,
    );
    add(
        "silence",
        Wav::new(pcm(2, 44_100, 16), audio(600, 2, 2, Silence, 19)),
        splits(LARGE, 19),
        5,
        Some(231),
        0,
    );
    add(
        "noise-24bit-verbatim-fallback",
        Wav::new(pcm(2, 96_000, 24), audio(500, 2, 3, Noise, 20)),
        splits(SMALL, 20),
        8,
        Some(128),
        0,
    );
    add(
        "noise-8bit-8ch",
        Wav::new(pcm(8, 8_000, 8), audio(300, 8, 1, Noise, 21)),
        splits(IN_SAMPLE, 21),
        0,
        Some(33),
        0,
    );
    add(
        "pcm12-plain-in-16",
        Wav::new(pcm(1, 44_100, 12), audio(300, 1, 2, Tone, 22)),
        splits(SMALL, 22),
        5,
        Some(64),
        0,
    );

    // Refusals: each must be a clean error before any FLAC byte.
    let tone = || audio(64, 2, 2, Tone, 30);
    let refuse = |name, fmt_body: Vec<u8>, edit: fn(&mut Vec<u8>), header: u8| {
        let mut bytes = Wav::new(fmt_body, tone()).bytes();
        edit(&mut bytes);
        (name, bytes, header)
    };
    let refusals: Vec<(&str, Vec<u8>, u8)> = vec![
        refuse("refuse-rifx", pcm(2, 44_100, 16), |b| b[3] = b'X', 0),
        refuse(
            "refuse-rf64",
            pcm(2, 44_100, 16),
            |b| b[..4].copy_from_slice(b"RF64"),
            0,
        ),
        refuse("refuse-not-riff", pcm(2, 44_100, 16), |b| b[0] = b'r', 0),
        refuse("refuse-not-wave", pcm(2, 44_100, 16), |b| b[11] = b'X', 0),
        refuse("refuse-fmt-14-bytes", pcm(2, 44_100, 16), |b| b[16] = 14, 0),
        refuse("refuse-fmt-huge", pcm(2, 44_100, 16), |b| b[18] = 0x7F, 0),
        refuse("refuse-float", fmt(3, 2, 44_100, 32), |_| {}, 0),
        refuse("refuse-alaw", fmt(6, 1, 8_000, 8), |_| {}, 0),
        refuse("refuse-mulaw", fmt(7, 1, 8_000, 8), |_| {}, 0),
        refuse("refuse-adpcm", fmt(2, 1, 8_000, 4), |_| {}, 0),
        refuse("refuse-32bit", pcm(2, 44_100, 32), |_| {}, 0),
        refuse("refuse-9-channels", pcm(9, 44_100, 16), |_| {}, 0),
        refuse("refuse-rate-655351", pcm(2, 655_351, 16), |_| {}, 0),
        refuse("refuse-rate-700000", pcm(2, 700_000, 16), |_| {}, 0),
        refuse("refuse-zero-channels", pcm(0, 44_100, 16), |_| {}, 0),
        refuse("refuse-zero-rate", pcm(2, 0, 16), |_| {}, 0),
        refuse("refuse-zero-bits", pcm(2, 44_100, 0), |_| {}, 0),
        refuse(
            "refuse-bad-block-align",
            pcm(2, 44_100, 16),
            |b| b[32] = 3,
            0,
        ),
        refuse(
            "refuse-bad-chunk-id",
            pcm(2, 44_100, 16),
            |b| b[36] = 0x01,
            0,
        ),
        refuse(
            "refuse-extensible-bad-guid",
            extensible(2, 44_100, 16, 16, 3, 1),
            |b| b[50] ^= 0xFF,
            0,
        ),
        refuse(
            "refuse-extensible-float",
            extensible(2, 44_100, 32, 32, 3, 3),
            |_| {},
            0,
        ),
        refuse(
            "refuse-extensible-valid-over-container",
            extensible(1, 44_100, 16, 20, 4, 1),
            |_| {},
            0,
        ),
        refuse(
            "refuse-extensible-container-not-bytes",
            extensible(1, 44_100, 12, 12, 4, 1),
            |_| {},
            0,
        ),
        refuse(
            "refuse-extensible-short-cbsize",
            extensible(2, 44_100, 16, 16, 3, 1),
            |b| b[36] = 10,
            0,
        ),
        refuse(
            "refuse-extensible-in-16-bytes",
            extensible(2, 44_100, 16, 16, 3, 1),
            |b| {
                b[16] = 16;
                b.drain(36..60);
            },
            0,
        ),
        refuse(
            "refuse-data-before-fmt",
            pcm(2, 44_100, 16),
            |b| {
                let fmt: Vec<u8> = b.drain(12..36).collect();
                b.extend_from_slice(&fmt);
            },
            0,
        ),
        refuse(
            "refuse-duplicate-fmt",
            pcm(2, 44_100, 16),
            |b| {
                let fmt: Vec<u8> = b[12..36].to_vec();
                b.splice(36..36, fmt);
            },
            0,
        ),
        refuse(
            "refuse-truncated-header",
            pcm(2, 44_100, 16),
            |b| b.truncate(30),
            0,
        ),
        refuse(
            "refuse-huge-declared-chunk",
            pcm(2, 44_100, 16),
            |b| {
                b.splice(36..36, *b"LIST\xF0\xFF\xFF\xFF");
            },
            0,
        ),
        refuse(
            "refuse-header-over-bound",
            pcm(2, 44_100, 16),
            |b| {
                let mut list = b"LIST\x00\x04\0\0".to_vec();
                list.extend(std::iter::repeat_n(b'i', 1024));
                b.splice(36..36, list);
            },
            100,
        ),
        refuse("refuse-empty", pcm(2, 44_100, 16), |b| b.clear(), 0),
    ];

    for (k, seed) in wavs.iter().enumerate() {
        let WavSeed {
            name,
            wav,
            split,
            level,
            block,
            header_byte: header,
        } = seed;
        let bytes = wav.bytes();
        let plan = IngestPlan {
            splits: *split,
            input: Input::Wav,
            level: EncoderLevel::new(*level).expect("a level"),
            block_size: *block,
            max_header_bytes: 0,
            // Every third file's producer goes away once and resumes.
            resume_after: (k % 3 == 2).then_some(k as u8 * 5),
        };
        let seed = [plan.to_bytes(*header), bytes.clone()].concat();
        seeds.write(&ingest_dir, &format!("seed-{name}"), &seed);
        // The header target gets the header and a little audio.
        let data_at = bytes
            .windows(4)
            .position(|w| w == b"data")
            .expect("a data chunk")
            + 8;
        let cut = bytes.len().min(data_at + 40);
        let header_seed = [&split.to_bytes()[..], &[*header], &bytes[..cut]].concat();
        seeds.write(&header_dir, &format!("seed-{name}"), &header_seed);
    }
    for (name, bytes, header) in &refusals {
        let plan = IngestPlan {
            splits: splits(SMALL, 40),
            input: Input::Wav,
            level: EncoderLevel::default(),
            block_size: None,
            max_header_bytes: 0,
            resume_after: None,
        };
        let seed = [plan.to_bytes(*header), bytes.clone()].concat();
        seeds.write(&ingest_dir, &format!("seed-{name}"), &seed);
        let header_seed = [&splits(IN_SAMPLE, 41).to_bytes()[..], &[*header], bytes].concat();
        seeds.write(&header_dir, &format!("seed-{name}"), &header_seed);
    }

    // Raw PCM (`/api/ws/audio?format=u8|s16le|s24le`).
    let raws = [
        RawSeed {
            name: "raw-s16le-mono-16000",
            channels: 1,
            bytes_per_sample: 2,
            rate: 16_000,
            frames: 1000,
            signal: Tone,
            mode: SMALL,
            block: None,
        },
        RawSeed {
            name: "raw-s16le-stereo-48000",
            channels: 2,
            bytes_per_sample: 2,
            rate: 48_000,
            frames: 600,
            signal: Tone,
            mode: ONE,
            block: Some(128),
        },
        RawSeed {
            name: "raw-s24le-8ch-655350",
            channels: 8,
            bytes_per_sample: 3,
            rate: 655_350,
            frames: 120,
            signal: Tone,
            mode: IN_SAMPLE,
            block: Some(32),
        },
        RawSeed {
            name: "raw-u8-mono-8000",
            channels: 1,
            bytes_per_sample: 1,
            rate: 8_000,
            frames: 1500,
            signal: Tone,
            mode: MEDIUM,
            block: Some(1024),
        },
        RawSeed {
            name: "raw-s24le-stereo-noise",
            channels: 2,
            bytes_per_sample: 3,
            rate: 96_000,
            frames: 400,
            signal: Noise,
            mode: LARGE,
            block: Some(64),
        },
        RawSeed {
            name: "raw-s16le-3ch-partial-tail",
            channels: 3,
            bytes_per_sample: 2,
            rate: 44_100,
            frames: 300,
            signal: Tone,
            mode: IN_SAMPLE,
            block: Some(48),
        },
    ];
    for (i, raw) in raws.into_iter().enumerate() {
        let RawSeed {
            name,
            channels,
            bytes_per_sample,
            rate,
            frames,
            signal,
            mode,
            block,
        } = raw;
        let mut pcm = audio(frames, channels, bytes_per_sample, signal, 50 + i as u64);
        if name.ends_with("partial-tail") {
            pcm.extend_from_slice(&[9, 9, 9]);
        }
        let plan = IngestPlan {
            splits: splits(mode, 50 + i as u32),
            input: Input::Raw {
                channels,
                bytes_per_sample,
                sample_rate: rate,
            },
            level: EncoderLevel::new((i % 9) as u8).expect("a level"),
            block_size: block,
            max_header_bytes: 0,
            resume_after: (i % 2 == 1).then_some(i as u8 * 11),
        };
        let seed = [plan.to_bytes(0), pcm].concat();
        seeds.write(&ingest_dir, &format!("seed-{name}"), &seed);
    }
    println!(
        "seeds: {} files, {} bytes, in {}",
        seeds.count,
        seeds.bytes,
        root.display()
    );
}
