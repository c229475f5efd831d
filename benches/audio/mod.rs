//! The audio every bench runs on, loaded in one place.
//!
//! `benches/audio.sh` renders real recordings into `target/bench-audio/`
//! (or the directory named by [`AUDIO_DIR_ENV`]). A bench reads the first
//! [`CLIP_SECONDS`] of each with hound. On a bare clone the files are absent,
//! and a synthetic signal of the same rate, channels and width from the codec
//! fixtures stands in, with one line on stderr saying so: the benches still
//! run (and `cargo test --benches` still checks them), but their numbers then
//! say nothing about music or speech.
//!
//! Included by each bench with `mod audio;`; a bench uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;

use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use flacstream_codec::flac::{default_block_size, StreamFormat};
use flacstream_codec::pcm::PcmLayout;

/// Environment variable naming the directory with the rendered audio; by
/// default `target/bench-audio` under the workspace root.
pub const AUDIO_DIR_ENV: &str = "FLACSTREAM_BENCH_AUDIO";

/// Seconds of audio a clip holds when benches are timed (`cargo bench`):
/// long enough to span quiet and loud passages, short enough that one pass
/// at the slowest level stays well under a second.
pub const CLIP_SECONDS: u32 = 20;

/// Seconds of audio a clip holds when the benches only run once as a test
/// (`cargo test --benches`), so CI checks them in seconds.
pub const SMOKE_CLIP_SECONDS: u32 = 2;

/// Seed for the synthetic stand-in signal (any fixed value; fixed so runs compare).
const SYNTHETIC_SEED: u64 = 0x5EED;

/// One of the recordings `benches/audio.sh` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `music-16.wav`: 44.1 kHz, 16-bit stereo, MIDI rendered by fluidsynth.
    Music16,
    /// `music-24.wav`: 48 kHz, 24-bit stereo.
    Music24,
    /// `speech-16k.wav`: 16 kHz, 16-bit mono recorded speech.
    Speech16k,
}

impl Source {
    /// Every source, in the order benches report them.
    pub const ALL: [Source; 3] = [Source::Music16, Source::Music24, Source::Speech16k];

    /// Short name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Source::Music16 => "music-16",
            Source::Music24 => "music-24",
            Source::Speech16k => "speech-16k",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Source::Music16 => "music-16.wav",
            Source::Music24 => "music-24.wav",
            Source::Speech16k => "speech-16k.wav",
        }
    }

    /// (sample rate in Hz, channels, bits) the file is rendered with, which
    /// the synthetic stand-in copies.
    fn expected_shape(self) -> (u32, u16, u16) {
        match self {
            Source::Music16 => (44_100, 2, 16),
            Source::Music24 => (48_000, 2, 24),
            Source::Speech16k => (16_000, 1, 16),
        }
    }
}

/// A clip: interleaved samples and their shape.
pub struct Clip {
    /// Which recording this is (or stands in for).
    pub source: Source,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample (16 or 24).
    pub bits: u16,
    /// Interleaved samples, whole sample frames.
    pub samples: Vec<i32>,
    /// Whether this is the real recording (false: synthetic stand-in).
    pub real: bool,
}

impl Clip {
    /// Samples per channel: the unit of every audio throughput in these
    /// benches, so that x real time = (elements per second) ÷ sample rate.
    pub fn frames(&self) -> u64 {
        (self.samples.len() / usize::from(self.channels)) as u64
    }

    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// The stream format for blocks of `block_size` (`None`: the service's
    /// default for the rate).
    pub fn format(&self, block_size: Option<usize>) -> StreamFormat {
        StreamFormat {
            sample_rate: self.sample_rate,
            layout: self.layout(),
            block_size: block_size.unwrap_or_else(|| default_block_size(self.sample_rate)),
        }
    }

    /// Channels and sample width.
    pub fn layout(&self) -> PcmLayout {
        PcmLayout {
            channels: usize::from(self.channels),
            bytes_per_sample: usize::from(self.bits / 8),
        }
    }

    /// The samples as little-endian PCM bytes (a WAV `data` chunk).
    pub fn pcm(&self) -> Vec<u8> {
        pcm_bytes(&self.samples, self.bits)
    }

    /// The clip as a plain WAV file with exact sizes.
    pub fn wav(&self) -> Vec<u8> {
        wav_bytes(
            &WavSpec::pcm(self.channels, self.sample_rate, self.bits),
            &self.pcm(),
        )
    }

    /// `name (rate Hz)`: how a clip is named in benchmark ids, with the rate
    /// a reader needs to turn samples/s into x real time.
    pub fn label(&self) -> String {
        format!("{} ({} Hz)", self.source.name(), self.sample_rate)
    }
}

/// Whether criterion will time the benches (`cargo bench` passes `--bench`)
/// rather than run each once as a test (`cargo test --benches`).
pub fn timing() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Seconds of audio per clip for this run: [`CLIP_SECONDS`] when timing,
/// [`SMOKE_CLIP_SECONDS`] when only testing.
pub fn clip_seconds() -> u32 {
    if timing() {
        CLIP_SECONDS
    } else {
        SMOKE_CLIP_SECONDS
    }
}

/// The directory the rendered audio is read from.
pub fn audio_dir() -> PathBuf {
    match std::env::var_os(AUDIO_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("bench-audio"),
    }
}

/// The path a source's file is read from.
pub fn path(source: Source) -> PathBuf {
    audio_dir().join(source.file_name())
}

/// Loads the first [`clip_seconds`] of `source`, or a synthetic stand-in.
pub fn load(source: Source) -> Clip {
    let path = path(source);
    let seconds = clip_seconds();
    if !path.exists() {
        eprintln!(
            "bench audio: {} not found (run benches/audio.sh, or set {AUDIO_DIR_ENV}); \
             {} uses a synthetic signal, so its numbers are not those of real audio",
            path.display(),
            source.name()
        );
        return synthetic(source, seconds);
    }
    match read(source, &path, seconds) {
        Ok(clip) => clip,
        Err(e) => panic!("bench audio: cannot read {}: {e}", path.display()),
    }
}

fn read(source: Source, path: &std::path::Path, seconds: u32) -> Result<Clip, String> {
    let mut reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || !matches!(spec.bits_per_sample, 16 | 24) {
        return Err(format!(
            "{:?} {}-bit samples; the benches take 16- or 24-bit integer PCM",
            spec.sample_format, spec.bits_per_sample
        ));
    }
    let channels = spec.channels;
    let frames = spec.sample_rate as usize * seconds as usize;
    let samples = reader
        .samples::<i32>()
        .take(frames * usize::from(channels))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let whole = samples.len() - samples.len() % usize::from(channels);
    let mut samples = samples;
    samples.truncate(whole);
    if samples.is_empty() {
        return Err("no audio".into());
    }
    let clip = Clip {
        source,
        sample_rate: spec.sample_rate,
        channels,
        bits: spec.bits_per_sample,
        samples,
        real: true,
    };
    eprintln!(
        "bench audio: {} from {} ({:.1} s, {} Hz, {} ch, {}-bit)",
        source.name(),
        path.display(),
        clip.seconds(),
        clip.sample_rate,
        clip.channels,
        clip.bits
    );
    Ok(clip)
}

fn synthetic(source: Source, seconds: u32) -> Clip {
    let (sample_rate, channels, bits) = source.expected_shape();
    let frames = sample_rate as usize * seconds as usize;
    Clip {
        source,
        sample_rate,
        channels,
        bits,
        samples: test_signal(frames, channels, bits, SYNTHETIC_SEED),
        real: false,
    }
}

/// The sanity check every audio bench runs before timing: decodes `flac`
/// with claxon (independent of flacenc) and compares every sample with the
/// clip, panicking with the case, sample, channel and block of the first
/// mismatch. Returns the FLAC size as a percentage of the clip's PCM.
pub fn assert_decodes_to(flac: &[u8], clip: &Clip, case: &str, block_size: usize) -> f64 {
    let mut reader = claxon::FlacReader::new(flac)
        .unwrap_or_else(|e| panic!("sanity check: {case}: claxon refuses the stream header: {e}"));
    let info = reader.streaminfo();
    assert_eq!(
        (info.sample_rate, info.channels, info.bits_per_sample),
        (
            clip.sample_rate,
            u32::from(clip.channels),
            u32::from(clip.bits)
        ),
        "sanity check: {case}: STREAMINFO rate, channels and bits"
    );
    let channels = usize::from(clip.channels);
    let mut decoded = Vec::with_capacity(clip.samples.len());
    for sample in reader.samples() {
        match sample {
            Ok(s) => decoded.push(s),
            Err(e) => panic!(
                "sanity check: {case}: claxon fails after {} samples per channel: {e}",
                decoded.len() / channels
            ),
        }
    }
    if let Some(i) = decoded.iter().zip(&clip.samples).position(|(a, b)| a != b) {
        panic!(
            "sanity check: {case}: sample {} channel {} (block {}) decoded {} expected {}",
            i / channels,
            i % channels,
            i / channels / block_size,
            decoded[i],
            clip.samples[i]
        );
    }
    assert_eq!(
        decoded.len(),
        clip.samples.len(),
        "sanity check: {case}: decoded sample count"
    );
    let pcm_bytes = clip.samples.len() * usize::from(clip.bits / 8);
    100.0 * flac.len() as f64 / pcm_bytes as f64
}
