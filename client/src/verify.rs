//! Decodes a FLAC file with claxon (independent of the server's encoder) and
//! compares it with the WAV it came from: format, every sample, the
//! STREAMINFO total and MD5.
//!
//! The WAV is decoded with flacstream-codec's own [`WavParser`] and
//! [`PcmDecoder`], which read every WAV the server accepts (streaming-size
//! headers, short data, extensible formats) exactly as the server does;
//! `hound` refuses some of these. Both sides are streamed, so memory stays
//! bounded by one block whatever the length.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavError, WavEvent, WavFormat, WavParser};
use thiserror::Error;

/// Input samples decoded per step.
const STEP_SAMPLES: usize = 8 * 4096;

/// How the output differs from the input.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The output file could not be opened.
    #[error("cannot read the output: {0}")]
    Read(#[source] std::io::Error),
    /// The input's header cannot be read here.
    #[error("cannot read the input WAV to compare: {0}")]
    Input(#[source] WavError),
    /// claxon cannot decode the output.
    #[error("the output is not valid FLAC: {0}")]
    Decode(#[source] claxon::Error),
    /// A STREAMINFO field differs from the WAV header.
    #[error("the output's {field} is {output}, the input's {input}")]
    Format {
        /// Which field.
        field: &'static str,
        /// The input's value.
        input: u32,
        /// The output's value.
        output: u32,
    },
    /// A sample differs.
    #[error("sample {frame} of channel {channel} decodes to {output}, the input has {input}")]
    Sample {
        /// Sample frame (per channel) index.
        frame: u64,
        /// Channel index.
        channel: u64,
        /// The input's value.
        input: i32,
        /// The decoded value.
        output: i32,
    },
    /// The output holds more or fewer samples than the input.
    #[error("the output holds {output} samples per channel, the input {input}")]
    Length {
        /// Sample frames in the input.
        input: u64,
        /// Sample frames decoded (at least this many).
        output: u64,
    },
    /// STREAMINFO's total samples is wrong.
    #[error("STREAMINFO says {output} samples per channel, the input has {input}")]
    TotalSamples {
        /// Sample frames in the input.
        input: u64,
        /// STREAMINFO's total.
        output: u64,
    },
    /// STREAMINFO's MD5 is not the input audio's.
    #[error("STREAMINFO's MD5 is not the input audio's")]
    Md5,
}

/// A successful comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Samples per channel compared.
    pub samples: u64,
}

/// Checks that the FLAC at `flac` decodes to exactly the audio in `wav`.
pub fn verify(flac: &Path, wav: &[u8]) -> Result<Verified, VerifyError> {
    let file = File::open(flac).map_err(VerifyError::Read)?;
    verify_reader(BufReader::new(file), wav)
}

/// [`verify`] for a FLAC read from `flac` (one held in memory for stdout).
pub fn verify_reader(flac: impl Read, wav: &[u8]) -> Result<Verified, VerifyError> {
    let mut reader = claxon::FlacReader::new(flac).map_err(VerifyError::Decode)?;
    let info = reader.streaminfo();
    let mut decoded = reader.samples();

    let mut parser = WavParser::new(u64::MAX);
    let mut rest = wav;
    let mut pcm: Option<PcmDecoder> = None;
    let mut buf = vec![0i32; STEP_SAMPLES];
    let mut index: u64 = 0;
    // Set to the output's length when it ends before the input.
    let mut short: Option<u64> = None;
    while let Some(event) = parser.next(&mut rest).map_err(VerifyError::Input)? {
        match event {
            WavEvent::Format(format) => {
                check_format(&format, &info)?;
                pcm = Some(PcmDecoder::new(PcmLayout {
                    channels: usize::from(format.channels),
                    bytes_per_sample: format.bytes_per_sample(),
                }));
            }
            WavEvent::Audio(mut audio) => {
                let Some(pcm) = pcm.as_mut() else {
                    return Err(VerifyError::Input(WavError::DataBeforeFmt));
                };
                let channels = pcm.layout().channels as u64;
                while !audio.is_empty() {
                    let n = pcm.decode(&mut audio, &mut buf);
                    for &input in &buf[..n] {
                        if short.is_some() {
                            continue; // only counting the input now
                        }
                        let Some(output) = decoded.next() else {
                            short = Some(index / channels);
                            continue;
                        };
                        let output = output.map_err(VerifyError::Decode)?;
                        if output != input {
                            return Err(VerifyError::Sample {
                                frame: index / channels,
                                channel: index % channels,
                                input,
                                output,
                            });
                        }
                        index += 1;
                    }
                }
            }
            WavEvent::DataEnd => break,
        }
    }
    parser.finish().map_err(VerifyError::Input)?;
    let pcm = pcm.ok_or(VerifyError::Input(WavError::TruncatedHeader))?;
    let frames = pcm.frames_decoded();
    if let Some(output) = short {
        return Err(VerifyError::Length {
            input: frames,
            output,
        });
    }
    if decoded.next().is_some() {
        let extra = 1 + decoded.count() as u64;
        let channels = pcm.layout().channels as u64;
        return Err(VerifyError::Length {
            input: frames,
            output: frames + extra / channels,
        });
    }
    let total = info.samples.unwrap_or(0);
    if total != frames {
        return Err(VerifyError::TotalSamples {
            input: frames,
            output: total,
        });
    }
    if info.md5sum != pcm.md5_digest() {
        return Err(VerifyError::Md5);
    }
    Ok(Verified { samples: frames })
}

fn check_format(
    format: &WavFormat,
    info: &claxon::metadata::StreamInfo,
) -> Result<(), VerifyError> {
    let fields = [
        ("channel count", u32::from(format.channels), info.channels),
        (
            "bits per sample",
            u32::from(format.container_bits),
            info.bits_per_sample,
        ),
        ("sample rate", format.sample_rate, info.sample_rate),
    ];
    for (field, input, output) in fields {
        if input != output {
            return Err(VerifyError::Format {
                field,
                input,
                output,
            });
        }
    }
    Ok(())
}
