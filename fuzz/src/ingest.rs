//! The `ingest` check: bytes in pieces → PCM → FLAC → claxon, compared with
//! an independent reading of the same bytes.
//!
//! [`ingest`] drives the service's own parts the way a session does
//! (`actors/src/session/input.rs`): the WAV parser over each message, the
//! PCM decoder with partial samples carried across messages, the staging
//! ring that cuts blocks (stopping when full), and the frame encoder; the
//! stream header goes out once the format is known, the last partial block
//! is flushed at the end, and bytes after the declared data are ignored.
//! Only the actor plumbing (messages, the encoder pool, reordering) is left
//! out; `actors/tests/chunking.rs` runs the real actor.

use flacstream_actors::staging::Staging;
use flacstream_codec::flac::{
    default_block_size, EncoderLevel, FlacError, FrameEncoder, FrameStats, StreamFormat,
    StreamInfo, STREAMINFO_BYTES, STREAMINFO_OFFSET,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavError, WavEvent, WavParser};

use crate::alloc::largest_allocation;
use crate::plan::{IngestPlan, Input, SplitMode, Splits};
use crate::reference;

/// Largest single allocation one stream may make, in bytes, whatever its
/// header declares: the staging ring of two 16384-sample blocks of 8
/// channels (1 MiB) and the encoder's buffers are the big ones.
pub const MAX_STREAM_ALLOCATION: usize = 4 << 20;

/// Bytes a frame header can take at most (sync, block size and rate codes,
/// a 31-bit frame number in 6 bytes, 16-bit block size and rate, CRC-8).
const MAX_FRAME_HEADER_BYTES: usize = 16;

/// What an accepted stream produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The stream as sent: `fLaC`, the provisional STREAMINFO, the frames.
    pub flac: Vec<u8>,
    /// The final STREAMINFO (totals, MD5, frame sizes).
    pub info: StreamInfo,
    /// Each frame's length in bytes and samples per channel, in order.
    pub frames: Vec<(usize, usize)>,
    /// Bytes of a trailing partial sample frame that were dropped.
    pub dropped_bytes: usize,
}

/// Why a stream produced no FLAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The WAV header was rejected.
    Header(WavError),
    /// The input ended before the header was complete, or held no `data`.
    NoHeader(WavError),
    /// The encoder refused a block (a bug for audio that was accepted).
    Encoder(FlacError),
}

/// A stream whose format is known.
struct Stream {
    format: StreamFormat,
    decoder: PcmDecoder,
    staging: Staging,
    encoder: FrameEncoder,
    level: EncoderLevel,
    out: Encoded,
    stats: FrameStats,
}

impl Stream {
    fn new(sample_rate: u32, layout: PcmLayout, plan: &IngestPlan) -> Self {
        let block_size = plan
            .block_size
            .unwrap_or_else(|| default_block_size(sample_rate));
        let format = StreamFormat {
            sample_rate,
            layout,
            block_size,
        };
        Self {
            format,
            decoder: PcmDecoder::new(layout),
            staging: Staging::new(block_size, layout.channels),
            encoder: FrameEncoder::new(),
            level: plan.level,
            out: Encoded {
                flac: StreamInfo::provisional(format).stream_header(),
                info: StreamInfo::provisional(format),
                frames: Vec::new(),
                dropped_bytes: 0,
            },
            stats: FrameStats::default(),
        }
    }

    /// Stages `audio`, encoding each block as soon as it is whole (the ring
    /// holds two blocks; a session waits for room the same way).
    fn take(&mut self, mut audio: &[u8]) -> Result<(), FlacError> {
        while !audio.is_empty() {
            let before = audio.len();
            self.staging.stage(&mut self.decoder, &mut audio);
            let mut popped = false;
            while let Some(block) = self.staging.pop_block(false) {
                self.encode(&block)?;
                popped = true;
            }
            assert!(
                popped || audio.len() < before,
                "staging took nothing and had no whole block"
            );
        }
        Ok(())
    }

    fn encode(&mut self, block: &[i32]) -> Result<(), FlacError> {
        let number = self.stats.frames as u32;
        let frame = self
            .encoder
            .encode(&self.format, self.level, number, block)?;
        self.stats.record(&frame);
        self.out.frames.push((frame.bytes.len(), frame.samples));
        self.out.flac.extend_from_slice(&frame.bytes);
        Ok(())
    }

    /// Flushes the last partial block and fills in the final STREAMINFO.
    fn finish(mut self) -> Result<Encoded, FlacError> {
        while let Some(block) = self.staging.pop_block(true) {
            self.encode(&block)?;
        }
        self.out.info = StreamInfo {
            format: self.format,
            min_frame_bytes: self.stats.min_frame_bytes,
            max_frame_bytes: self.stats.max_frame_bytes,
            total_samples: self.decoder.frames_decoded(),
            md5: self.decoder.md5_digest(),
        };
        self.out.dropped_bytes = self.decoder.pending_bytes();
        Ok(self.out)
    }
}

/// Streams `payload` as a session with `plan`'s settings would: cut into
/// messages by `plan.splits`, then `end`. With `plan.resume_after`, the
/// producer goes away after that message and a new one resends from where
/// the session stands (`samples_received`, or the start of a header cut off
/// mid-way), as `Session::drop_producer_input` expects.
pub fn ingest(plan: &IngestPlan, payload: &[u8]) -> Result<Encoded, Refused> {
    let mut parser = WavParser::new(plan.max_header_bytes);
    let mut stream = match plan.input {
        Input::Wav => None,
        Input::Raw {
            channels,
            bytes_per_sample,
            sample_rate,
        } => {
            let layout = PcmLayout {
                channels,
                bytes_per_sample,
            };
            Some(Stream::new(sample_rate, layout, plan))
        }
    };
    let mut pieces = plan.splits.pieces(payload);
    let mut resume_at = plan
        .resume_after
        .filter(|_| !pieces.is_empty())
        .map(|r| usize::from(r) % pieces.len());
    // Where the audio starts in `payload`, once the header is complete.
    let mut data_offset = match plan.input {
        Input::Wav => None,
        Input::Raw { .. } => Some(0),
    };
    let mut fed = 0;
    let mut data_ended = false;
    let mut i = 0;
    while i < pieces.len() && !data_ended {
        let piece = pieces[i];
        let mut input: &[u8] = piece;
        match (plan.input, stream.as_mut()) {
            (Input::Raw { .. }, Some(s)) => s.take(input).map_err(Refused::Encoder)?,
            _ => {
                while let Some(event) = parser.next(&mut input).map_err(Refused::Header)? {
                    match event {
                        WavEvent::Format(f) => {
                            assert!(stream.is_none(), "a second format");
                            let layout = PcmLayout {
                                channels: usize::from(f.channels),
                                bytes_per_sample: f.bytes_per_sample(),
                            };
                            stream = Some(Stream::new(f.sample_rate, layout, plan));
                            data_offset = Some(fed + piece.len() - input.len());
                        }
                        WavEvent::Audio(audio) => {
                            let s = stream.as_mut().expect("audio comes after the format");
                            s.take(audio).map_err(Refused::Encoder)?;
                        }
                        WavEvent::DataEnd => {
                            // Bytes after the declared data are ignored.
                            data_ended = true;
                            break;
                        }
                    }
                }
            }
        }
        fed += piece.len();
        if resume_at == Some(i) && !data_ended {
            resume_at = None;
            let resend_from = match (stream.as_mut(), data_offset) {
                (Some(s), Some(offset)) => {
                    let partial = s.decoder.discard_partial();
                    parser.unread(partial as u64);
                    let align = s.format.layout.block_align();
                    offset + s.decoder.frames_decoded() as usize * align
                }
                _ => {
                    parser = WavParser::new(plan.max_header_bytes);
                    0
                }
            };
            pieces.truncate(i + 1);
            pieces.extend(plan.splits.pieces(&payload[resend_from..]));
            fed = resend_from;
        }
        i += 1;
    }
    match stream {
        Some(s) => s.finish().map_err(Refused::Encoder),
        None => Err(Refused::NoHeader(
            parser.finish().err().unwrap_or(WavError::TruncatedHeader),
        )),
    }
}

/// The check; `data` is a fuzz input (see [`crate::plan`]).
pub fn check(data: &[u8]) {
    let Some((plan, payload)) = IngestPlan::parse(data) else {
        return;
    };
    let (result, largest) = largest_allocation(|| ingest(&plan, payload));
    assert!(
        largest <= MAX_STREAM_ALLOCATION,
        "one allocation of {largest} bytes"
    );
    let whole_plan = IngestPlan {
        splits: Splits {
            mode: SplitMode::Whole,
            seed: 0,
        },
        resume_after: None,
        ..plan
    };
    if whole_plan != plan {
        let whole = ingest(&whole_plan, payload);
        assert_eq!(
            result, whole,
            "pieces ({:?}, resume after {:?}) and whole differ",
            plan.splits, plan.resume_after
        );
    }
    match result {
        Ok(encoded) => verify(&plan, payload, &encoded),
        Err(Refused::Encoder(e)) => panic!("the encoder refused accepted audio: {e}"),
        Err(Refused::Header(e) | Refused::NoHeader(e)) => {
            // A clean refusal: a stable code and a message for the client.
            assert!(!e.code().is_empty() && !e.to_string().is_empty());
        }
    }
}

/// Checks an accepted stream against the reference reading of `payload`.
fn verify(plan: &IngestPlan, payload: &[u8], encoded: &Encoded) {
    let (channels, bytes_per_sample, sample_rate, data) = match plan.input {
        Input::Raw {
            channels,
            bytes_per_sample,
            sample_rate,
        } => (channels, bytes_per_sample, sample_rate, payload),
        Input::Wav => {
            let r =
                reference::read_wav(payload).expect("accepted, but the reference finds no data");
            (
                usize::from(r.channels),
                r.bytes_per_sample,
                r.sample_rate,
                r.data,
            )
        }
    };
    let expected = reference::samples(data, channels, bytes_per_sample);
    let frames = expected.len() / channels;
    let info = &encoded.info;
    let format = info.format;
    assert_eq!(
        (format.sample_rate, format.layout.channels),
        (sample_rate, channels)
    );
    assert_eq!(format.layout.bytes_per_sample, bytes_per_sample);
    assert_eq!(info.total_samples, frames as u64, "total samples");
    assert_eq!(
        info.md5,
        reference::flac_md5(&expected, bytes_per_sample),
        "STREAMINFO MD5"
    );
    assert_eq!(
        encoded.dropped_bytes,
        data.len() % (channels * bytes_per_sample)
    );

    // The provisional header went out first, with the format and no totals.
    let header = &encoded.flac[..STREAMINFO_OFFSET + STREAMINFO_BYTES];
    assert_eq!(header, StreamInfo::provisional(format).stream_header());

    // Frames: whole blocks then the rest, each within its verbatim size.
    let block = format.block_size;
    assert_eq!(encoded.frames.len(), frames.div_ceil(block), "frame count");
    for (i, &(bytes, samples)) in encoded.frames.iter().enumerate() {
        let want = block.min(frames - i * block);
        assert_eq!(samples, want, "samples in frame {i}");
        let verbatim_bits = channels * (8 + 8 * bytes_per_sample * samples);
        let bound = MAX_FRAME_HEADER_BYTES + verbatim_bits.div_ceil(8) + 2;
        assert!(bytes <= bound, "frame {i} is {bytes} bytes, over {bound}");
    }
    let sizes = encoded.frames.iter().map(|f| f.0 as u32);
    assert_eq!(info.min_frame_bytes, sizes.clone().min().unwrap_or(0));
    assert_eq!(info.max_frame_bytes, sizes.max().unwrap_or(0));

    // Decoded by claxon with the final STREAMINFO written over the first.
    let mut flac = encoded.flac.clone();
    flac[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES].copy_from_slice(&info.to_bytes());
    let mut reader = claxon::FlacReader::new(flac.as_slice()).expect("claxon reads the header");
    let si = reader.streaminfo();
    assert_eq!(
        (
            si.sample_rate,
            si.channels as usize,
            si.bits_per_sample as usize
        ),
        (sample_rate, channels, 8 * bytes_per_sample)
    );
    assert_eq!(si.samples, (frames > 0).then_some(frames as u64));
    let decoded: Vec<i32> = reader
        .samples()
        .map(|s| s.expect("claxon decodes every frame"))
        .collect();
    if let Some(i) = decoded.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!(
            "sample {} channel {} (frame {}) decoded as {}, sent as {}",
            i / channels,
            i % channels,
            i / channels / block,
            decoded[i],
            expected[i]
        );
    }
    assert_eq!(decoded.len(), expected.len(), "decoded sample count");
}
