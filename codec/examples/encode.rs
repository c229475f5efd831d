//! Encodes one WAV file to FLAC on the service's own codec path
//! (`WavParser` → `PcmDecoder` → `FrameEncoder`, one thread), so benchmarks
//! such as `benches/compare.sh` time exactly what a session runs.
//!
//! ```text
//! cargo run --release -p flacstream-codec --example encode -- IN.wav OUT.flac [--level N] [--block-size B]
//! ```
//!
//! The output is a complete FLAC file: the final STREAMINFO (total samples,
//! MD5, frame sizes) is written over the provisional one at the end, as a
//! recorded session does. A one-line summary goes to stderr.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Instant;

use flacstream_codec::flac::{
    default_block_size, EncoderLevel, FrameEncoder, FrameStats, StreamFormat, StreamInfo,
    MAX_BLOCK_SIZE, MAX_LEVEL, MIN_BLOCK_SIZE, STREAMINFO_OFFSET,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavParser, DEFAULT_MAX_HEADER_BYTES};

/// Bytes read from the input per call, as a network message might carry.
const READ_CHUNK_BYTES: usize = 64 * 1024;

const USAGE: &str = "usage: encode IN.wav OUT.flac [--level 0-8] [--block-size 32-16384]";

/// Command-line arguments.
struct Args {
    input: String,
    output: String,
    level: EncoderLevel,
    block_size: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut level = EncoderLevel::default();
    let mut block_size = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--level" | "-l" => {
                let value = args.next().ok_or("--level needs a value")?;
                level = value
                    .parse()
                    .ok()
                    .and_then(EncoderLevel::new)
                    .ok_or(format!("--level must be 0 to {MAX_LEVEL}, got {value}"))?;
            }
            "--block-size" | "-b" => {
                let value = args.next().ok_or("--block-size needs a value")?;
                let block = value
                    .parse()
                    .ok()
                    .filter(|b| (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(b))
                    .ok_or(format!(
                        "--block-size must be {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}, got {value}"
                    ))?;
                block_size = Some(block);
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            _ => positional.push(arg),
        }
    }
    let [input, output] = <[String; 2]>::try_from(positional).map_err(|_| USAGE.to_string())?;
    Ok(Args {
        input,
        output,
        level,
        block_size,
    })
}

/// The encoding state once the WAV header has been read.
struct Stream {
    format: StreamFormat,
    decoder: PcmDecoder,
    /// One block of interleaved samples being filled.
    block: Vec<i32>,
    filled: usize,
    frame_number: u32,
    stats: FrameStats,
}

impl Stream {
    /// Encodes and writes the filled part of the block.
    fn flush(
        &mut self,
        encoder: &mut FrameEncoder,
        level: EncoderLevel,
        out: &mut impl Write,
    ) -> Result<(), String> {
        if self.filled == 0 {
            return Ok(());
        }
        let frame = encoder
            .encode(
                &self.format,
                level,
                self.frame_number,
                &self.block[..self.filled],
            )
            .map_err(|e| e.to_string())?;
        out.write_all(&frame.bytes).map_err(|e| e.to_string())?;
        self.stats.record(&frame);
        self.frame_number += 1;
        self.filled = 0;
        Ok(())
    }
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let mut input = File::open(&args.input).map_err(|e| format!("{}: {e}", args.input))?;
    let file = File::create(&args.output).map_err(|e| format!("{}: {e}", args.output))?;
    let mut out = BufWriter::new(file);
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    let mut encoder = FrameEncoder::new();
    let mut stream: Option<Stream> = None;
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut bytes_in = 0u64;

    loop {
        let n = input.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let mut rest = &chunk[..n];
        while let Some(event) = parser.next(&mut rest).map_err(|e| e.to_string())? {
            match event {
                WavEvent::Format(wav) => {
                    let layout = PcmLayout {
                        channels: usize::from(wav.channels),
                        bytes_per_sample: wav.bytes_per_sample(),
                    };
                    let block_size = args
                        .block_size
                        .unwrap_or_else(|| default_block_size(wav.sample_rate));
                    let format = StreamFormat {
                        sample_rate: wav.sample_rate,
                        layout,
                        block_size,
                    };
                    out.write_all(&StreamInfo::provisional(format).stream_header())
                        .map_err(|e| e.to_string())?;
                    stream = Some(Stream {
                        format,
                        decoder: PcmDecoder::new(layout),
                        block: vec![0; block_size * layout.channels],
                        filled: 0,
                        frame_number: 0,
                        stats: FrameStats::default(),
                    });
                }
                WavEvent::Audio(mut audio) => {
                    let Some(s) = stream.as_mut() else {
                        return Err("audio before the format".into());
                    };
                    bytes_in += audio.len() as u64;
                    while !audio.is_empty() {
                        let filled = s.filled;
                        s.filled += s.decoder.decode(&mut audio, &mut s.block[filled..]);
                        if s.filled == s.block.len() {
                            s.flush(&mut encoder, args.level, &mut out)?;
                        }
                    }
                }
                WavEvent::DataEnd => {}
            }
        }
    }
    parser.finish().map_err(|e| e.to_string())?;
    let Some(mut s) = stream else {
        return Err("no audio format found".into());
    };
    s.flush(&mut encoder, args.level, &mut out)?;

    let info = StreamInfo {
        format: s.format,
        min_frame_bytes: s.stats.min_frame_bytes,
        max_frame_bytes: s.stats.max_frame_bytes,
        total_samples: s.decoder.frames_decoded(),
        md5: s.decoder.md5_digest(),
    };
    let mut file = out.into_inner().map_err(|e| e.to_string())?;
    let bytes_out = file.stream_position().map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(STREAMINFO_OFFSET as u64))
        .map_err(|e| e.to_string())?;
    file.write_all(&info.to_bytes())
        .map_err(|e| e.to_string())?;

    let seconds = info.total_samples as f64 / f64::from(s.format.sample_rate);
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "level {} block {}: {} samples ({seconds:.1} s), {bytes_in} -> {bytes_out} bytes \
         (ratio {:.4}), {} frames ({} verbatim), {:.1}x real time (wall)",
        args.level.get(),
        s.format.block_size,
        info.total_samples,
        bytes_out as f64 / bytes_in.max(1) as f64,
        s.stats.frames,
        s.stats.verbatim_fallbacks,
        seconds / elapsed.max(f64::MIN_POSITIVE),
    );
    if s.decoder.pending_bytes() > 0 {
        eprintln!(
            "warning: {} trailing bytes of a partial sample frame were dropped",
            s.decoder.pending_bytes()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| run(&args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encode: {e}");
            ExitCode::FAILURE
        }
    }
}
