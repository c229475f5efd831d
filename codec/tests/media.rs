//! Every container and codec `media::MediaDecoder` takes, made at test time
//! from generated PCM with the encoders Debian ships (ffmpeg, flac, lame,
//! vorbis-tools), decoded and compared: lossless sources sample for sample
//! with the PCM they were made from, lossy ones against ffmpeg's own decode
//! (same sample count after gapless trimming, SNR above a per-codec bound).
//! A tool that is missing skips its cases and says so.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use flacstream_codec::media::{MediaDecoder, MediaError, MediaInfo, SourceCodec};

/// A scratch directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "flacstream-media-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// Whether `tool` runs; prints why a case is skipped if not.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "lame" || tool == "oggenc" {
            "--version"
        } else {
            "-version"
        })
        .output()
        .is_ok();
    if !ok {
        eprintln!("SKIPPED: `{tool}` is not installed (apt-get install it to run these cases)");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ffmpeg(args: &[&str]) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args);
    run(&mut cmd);
}

/// A WAV of `frames` of the test signal.
fn source_wav(
    dir: &Scratch,
    frames: usize,
    channels: u16,
    rate: u32,
    bits: u16,
) -> (PathBuf, Vec<i32>) {
    let samples = test_signal(frames, channels, bits, u64::from(rate) + u64::from(bits));
    let path = dir.path(&format!("src-{channels}-{rate}-{bits}.wav"));
    std::fs::write(
        &path,
        wav_bytes(
            &WavSpec::pcm(channels, rate, bits),
            &pcm_bytes(&samples, bits),
        ),
    )
    .unwrap();
    (path, samples)
}

/// Decodes a file to the end: what it is and its samples (as signed ints
/// at the stored width).
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

/// ffmpeg's decode of `path` as interleaved f64 (full scale ±1).
fn ffmpeg_decode(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-c:a", "pcm_f32le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// SNR in dB of `ours` (24-bit ints) against ffmpeg's float decode.
fn snr_db(ours: &[i32], reference: &[f64]) -> f64 {
    let scale = f64::from(1u32 << 23);
    let (mut signal, mut noise) = (0.0, 0.0);
    for (o, r) in ours.iter().zip(reference) {
        signal += r * r;
        let d = f64::from(*o) / scale - r;
        noise += d * d;
    }
    10.0 * (signal / noise.max(1e-30)).log10()
}

fn assert_exact(path: &Path, codec: SourceCodec, samples: &[i32], channels: u16, rate: u32) {
    let (info, got) = decode(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(info.codec, codec, "{}", path.display());
    assert!(info.lossless());
    assert_eq!(info.sample_rate, rate);
    assert_eq!(info.layout.channels, usize::from(channels));
    assert_eq!(got.len(), samples.len(), "{}: sample count", path.display());
    assert!(got == samples, "{}: samples differ", path.display());
}

#[test]
fn lossless_sources_decode_to_exactly_their_samples() {
    if !have("ffmpeg") || !have("flac") {
        return;
    }
    let dir = Scratch::new("lossless");
    for (channels, rate, bits) in [(2u16, 44_100u32, 16u16), (1, 48_000, 24), (2, 8_000, 8)] {
        let (wav, samples) = source_wav(&dir, 30_011, channels, rate, bits);
        let name = |ext: &str| dir.path(&format!("{channels}-{rate}-{bits}.{ext}"));
        let w = wav.to_str().unwrap();
        // FLAC, native and in Ogg, and WAV itself.
        if bits != 8 {
            run(Command::new("flac")
                .args(["--silent", "-f", "-o"])
                .arg(name("flac"))
                .arg(&wav));
            assert_exact(&name("flac"), SourceCodec::Flac, &samples, channels, rate);
            run(Command::new("flac")
                .args(["--silent", "--ogg", "-f", "-o"])
                .arg(name("oga"))
                .arg(&wav));
            assert_exact(&name("oga"), SourceCodec::Flac, &samples, channels, rate);
        }
        assert_exact(&wav, SourceCodec::Pcm, &samples, channels, rate);
        // AIFF (8-bit AIFF is signed) and CAF.
        let aiff_codec = match bits {
            8 => "pcm_s8",
            16 => "pcm_s16be",
            _ => "pcm_s24be",
        };
        ffmpeg(&["-i", w, "-c:a", aiff_codec, name("aiff").to_str().unwrap()]);
        assert_exact(&name("aiff"), SourceCodec::Pcm, &samples, channels, rate);
        let caf_codec = match bits {
            8 => "pcm_s8",
            16 => "pcm_s16le",
            _ => "pcm_s24le",
        };
        ffmpeg(&["-i", w, "-c:a", caf_codec, name("caf").to_str().unwrap()]);
        if bits == 8 {
            // symphonia's CAF reader takes 16- to 32-bit integer PCM only.
            let e = decode(&name("caf")).unwrap_err();
            assert_eq!(e.code(), "unsupported_codec", "{e}");
        } else {
            assert_exact(&name("caf"), SourceCodec::Pcm, &samples, channels, rate);
        }
        if bits != 8 {
            // ALAC in M4A with the moov at the end (ffmpeg's default) and at the front.
            ffmpeg(&["-i", w, "-c:a", "alac", name("m4a").to_str().unwrap()]);
            assert_exact(&name("m4a"), SourceCodec::Alac, &samples, channels, rate);
            let fast = dir.path(&format!("{channels}-{rate}-{bits}-faststart.m4a"));
            ffmpeg(&[
                "-i",
                w,
                "-c:a",
                "alac",
                "-movflags",
                "+faststart",
                fast.to_str().unwrap(),
            ]);
            assert_exact(&fast, SourceCodec::Alac, &samples, channels, rate);
            // FLAC and PCM in Matroska.
            ffmpeg(&["-i", w, "-c:a", "flac", name("mkv").to_str().unwrap()]);
            assert_exact(&name("mkv"), SourceCodec::Flac, &samples, channels, rate);
        }
    }
}

#[test]
fn g711_expands_as_ffmpeg_does() {
    if !have("ffmpeg") {
        return;
    }
    let dir = Scratch::new("g711");
    let (wav, _) = source_wav(&dir, 16_000, 1, 8_000, 16);
    for (codec, expected) in [
        ("pcm_alaw", SourceCodec::Alaw),
        ("pcm_mulaw", SourceCodec::Mulaw),
    ] {
        let out = dir.path(&format!("{codec}.wav"));
        ffmpeg(&[
            "-i",
            wav.to_str().unwrap(),
            "-c:a",
            codec,
            out.to_str().unwrap(),
        ]);
        let (info, got) = decode(&out).unwrap();
        assert_eq!(info.codec, expected);
        assert_eq!(info.layout.bytes_per_sample, 2);
        let reference: Vec<i32> = ffmpeg_decode(&out)
            .iter()
            .map(|f| (f * 32768.0).round() as i32)
            .collect();
        assert_eq!(got, reference, "{codec}");
    }
}

/// Music-like audio for lossy codecs: two swept tones and a little noise
/// at about −6 dBFS, with no full-scale spikes (a lossy decoder's overshoot
/// past full scale is clamped in FLAC but not in ffmpeg's float output, so
/// spikes would measure the clamp, not the decoder).
fn lossy_source(dir: &Scratch, frames: usize) -> PathBuf {
    let mut samples = Vec::with_capacity(frames * 2);
    let mut noise = 12345u32;
    for t in 0..frames {
        for ch in 0..2 {
            let f = 0.02 + 0.01 * f64::from(ch) + t as f64 * 1e-7;
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = f64::from(noise >> 16) / 65_536.0 - 0.5;
            let v = 16_000.0 * (t as f64 * f).sin() + 600.0 * n;
            samples.push(v as i32);
        }
    }
    let path = dir.path("lossy-src.wav");
    std::fs::write(
        &path,
        wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16)),
    )
    .unwrap();
    path
}

/// A lossy case: the file, its codec, the frames a gapless decode must
/// give (`None`: whatever ffmpeg gives, when the container declares no
/// trimming) and the least SNR against ffmpeg's decode.
struct Lossy {
    path: PathBuf,
    codec: SourceCodec,
    frames: Option<usize>,
    min_snr_db: f64,
}

#[test]
fn lossy_sources_match_ffmpegs_decode() {
    if !have("ffmpeg") {
        return;
    }
    const FRAMES: usize = 100_000;
    let dir = Scratch::new("lossy");
    let wav = lossy_source(&dir, FRAMES);
    let w = wav.to_str().unwrap();
    let mut cases = Vec::new();
    if have("lame") {
        let path = dir.path("lame.mp3");
        run(Command::new("lame")
            .args(["--quiet", "-V", "2", w])
            .arg(&path));
        cases.push(Lossy {
            path,
            codec: SourceCodec::Mp3,
            frames: Some(FRAMES),
            min_snr_db: 110.0,
        });
    }
    if have("oggenc") {
        let path = dir.path("oggenc.ogg");
        run(Command::new("oggenc")
            .args(["--quiet", "-q", "5", "-o"])
            .arg(&path)
            .arg(w));
        cases.push(Lossy {
            path,
            codec: SourceCodec::Vorbis,
            frames: Some(FRAMES),
            min_snr_db: 110.0,
        });
    }
    // AAC in M4A: the edit list trims the priming and the padding.
    let path = dir.path("aac.m4a");
    ffmpeg(&[
        "-i",
        w,
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        path.to_str().unwrap(),
    ]);
    cases.push(Lossy {
        path,
        codec: SourceCodec::Aac,
        frames: Some(FRAMES),
        min_snr_db: 110.0,
    });
    // ADTS declares no delay: every decoded frame is kept, as ffmpeg does.
    let path = dir.path("aac.aac");
    ffmpeg(&[
        "-i",
        w,
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        path.to_str().unwrap(),
    ]);
    cases.push(Lossy {
        path,
        codec: SourceCodec::Aac,
        frames: None,
        min_snr_db: 110.0,
    });
    // Vorbis in WebM (Matroska keeps no granule positions).
    let path = dir.path("vorbis.webm");
    ffmpeg(&["-i", w, "-c:a", "libvorbis", path.to_str().unwrap()]);
    cases.push(Lossy {
        path,
        codec: SourceCodec::Vorbis,
        frames: None,
        min_snr_db: 110.0,
    });
    for case in cases {
        let name = case.path.display();
        let (info, got) = decode(&case.path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.codec, case.codec, "{name}");
        assert!(!info.lossless());
        assert_eq!(info.layout.bytes_per_sample, 3);
        assert_eq!((info.sample_rate, info.layout.channels), (44_100, 2));
        let reference = ffmpeg_decode(&case.path);
        let frames = got.len() / 2;
        match case.frames {
            Some(n) => assert_eq!(frames, n, "{name}: frames after gapless trimming"),
            None => assert_eq!(got.len(), reference.len(), "{name}: frames as ffmpeg"),
        }
        // ffmpeg keeps an M4A's end padding; both start at the same frame.
        assert!(reference.len() >= got.len(), "{name}");
        let snr = snr_db(&got, &reference);
        eprintln!(
            "{name}: {frames} frames (ffmpeg {}), SNR against ffmpeg {snr:.1} dB",
            reference.len() / 2
        );
        assert!(
            snr >= case.min_snr_db,
            "{name}: SNR {snr:.1} dB < {}",
            case.min_snr_db
        );
    }
}
