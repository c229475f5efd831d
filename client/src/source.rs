//! The audio `record` sends: a WAV file or stream, whose header is read
//! here so only its samples go out (as raw PCM, which a session resumes at
//! an exact sample), or raw samples as they are.

use std::path::Path;

use flacstream_codec::wav::WavError;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ClientError;
use crate::input::parse_header;
use crate::stdio::is_stdio;

/// Most header bytes read before the first audio byte of a WAV: the
/// service's own bound (`FLACSTREAM_MAX_HEADER_BYTES`, 16 MiB).
pub const MAX_WAV_HEADER_BYTES: usize = 16 * 1024 * 1024;

/// Bytes read from the input at a time while looking for the WAV header.
const HEADER_READ_BYTES: usize = 64 * 1024;

/// The input's format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleFormat {
    /// A WAV file; its header says the rest.
    Wav,
    /// Signed 16-bit little-endian.
    S16le,
    /// Signed 24-bit little-endian, 3 bytes a sample.
    S24le,
    /// Unsigned 8-bit.
    U8,
    /// G.711 µ-law, a byte a sample.
    Mulaw,
    /// G.711 A-law, a byte a sample.
    Alaw,
}

impl SampleFormat {
    /// The session's `format` parameter.
    pub fn query_name(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::S16le => "s16le",
            Self::S24le => "s24le",
            Self::U8 => "u8",
            Self::Mulaw => "mulaw",
            Self::Alaw => "alaw",
        }
    }

    /// Bytes of one sample of one channel; `None` for `wav`.
    pub fn bytes_per_sample(self) -> Option<usize> {
        match self {
            Self::Wav => None,
            Self::S16le => Some(2),
            Self::S24le => Some(3),
            Self::U8 | Self::Mulaw | Self::Alaw => Some(1),
        }
    }

    /// The raw format of a WAV container width (8-bit WAV is unsigned).
    fn of_container_bits(bits: u16) -> Option<Self> {
        match bits {
            8 => Some(Self::U8),
            16 => Some(Self::S16le),
            24 => Some(Self::S24le),
            _ => None,
        }
    }
}

/// The raw format a session is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSpec {
    /// Never [`SampleFormat::Wav`].
    pub format: SampleFormat,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl RawSpec {
    /// Bytes of one sample frame: the unit in which a session resumes.
    pub fn frame_bytes(&self) -> u64 {
        self.format.bytes_per_sample().unwrap_or(1) as u64 * u64::from(self.channels)
    }

    /// `format=…&sample_rate=…&channels=…`.
    pub fn query(&self) -> String {
        format!(
            "format={}&sample_rate={}&channels={}",
            self.format.query_name(),
            self.sample_rate,
            self.channels
        )
    }
}

/// The input, positioned at its first audio byte.
pub struct Source {
    reader: Box<dyn AsyncRead + Unpin + Send>,
    /// Audio read while looking for the header, not yet handed out.
    pending: Vec<u8>,
    /// Audio bytes left in a WAV's declared `data` chunk; `None`: to the end.
    remaining: Option<u64>,
    /// The format the audio is sent in.
    pub spec: RawSpec,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens `path` (`-`: stdin) as `format`; raw formats need the rate and
    /// channels, a WAV's header gives them (and must not be contradicted).
    pub async fn open(
        path: &Path,
        format: SampleFormat,
        sample_rate: Option<u32>,
        channels: Option<u16>,
    ) -> Result<Self, ClientError> {
        let reader: Box<dyn AsyncRead + Unpin + Send> = if is_stdio(path) {
            Box::new(tokio::io::stdin())
        } else {
            Box::new(
                tokio::fs::File::open(path)
                    .await
                    .map_err(ClientError::Read)?,
            )
        };
        if format != SampleFormat::Wav {
            let (Some(sample_rate), Some(channels)) = (sample_rate, channels) else {
                return Err(ClientError::Usage(format!(
                    "--format {} needs --sample-rate and --channels",
                    format.query_name()
                )));
            };
            return Ok(Self {
                reader,
                pending: Vec::new(),
                remaining: None,
                spec: RawSpec {
                    format,
                    sample_rate,
                    channels,
                },
            });
        }
        if sample_rate.is_some() || channels.is_some() {
            return Err(ClientError::Usage(
                "--sample-rate and --channels are for raw --format; a WAV's header gives them"
                    .into(),
            ));
        }
        Self::open_wav(reader).await
    }

    async fn open_wav(mut reader: Box<dyn AsyncRead + Unpin + Send>) -> Result<Self, ClientError> {
        let mut bytes = Vec::new();
        let header = loop {
            match parse_header(&bytes) {
                Ok(header) => break header,
                Err(WavError::TruncatedHeader) if bytes.len() < MAX_WAV_HEADER_BYTES => {
                    let start = bytes.len();
                    bytes.resize(start + HEADER_READ_BYTES, 0);
                    let n = reader
                        .read(&mut bytes[start..])
                        .await
                        .map_err(ClientError::Read)?;
                    bytes.truncate(start + n);
                    if n == 0 {
                        return Err(wav_error(WavError::TruncatedHeader));
                    }
                }
                Err(WavError::TruncatedHeader) => {
                    return Err(ClientError::Usage(format!(
                        "the WAV input has more than {MAX_WAV_HEADER_BYTES} bytes before its audio"
                    )))
                }
                Err(e) => return Err(wav_error(e)),
            }
        };
        let format =
            SampleFormat::of_container_bits(header.format.container_bits).ok_or_else(|| {
                ClientError::Usage(format!(
                    "the WAV input has {}-bit samples; sessions take 8, 16 or 24",
                    header.format.container_bits
                ))
            })?;
        let pending = bytes.split_off(header.data_offset);
        let mut source = Self {
            reader,
            pending,
            remaining: header.format.data_len.map(u64::from),
            spec: RawSpec {
                format,
                sample_rate: header.format.sample_rate,
                channels: header.format.channels,
            },
        };
        if let Some(left) = source.remaining {
            let keep = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(source.pending.len());
            source.pending.truncate(keep);
        }
        Ok(source)
    }

    /// Reads audio into `buf`; 0 at the end of the audio.
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = match self.remaining {
            Some(0) => return Ok(0),
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX).min(buf.len()),
            None => buf.len(),
        };
        let n = if self.pending.is_empty() {
            self.reader.read(&mut buf[..limit]).await?
        } else {
            let n = self.pending.len().min(limit);
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            n
        };
        if let Some(left) = self.remaining.as_mut() {
            *left -= n as u64;
        }
        Ok(n)
    }
}

fn wav_error(e: WavError) -> ClientError {
    ClientError::Usage(format!("the input is not a WAV this client can send: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flacstream_codec::fixture::{wav_bytes, WavSpec};

    #[tokio::test]
    async fn a_wav_gives_its_audio_only() {
        let dir =
            std::env::temp_dir().join(format!("flacstream-client-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = WavSpec::pcm(2, 8_000, 16);
        spec.chunks_after_data = vec![(*b"LIST", vec![9; 10])];
        let audio: Vec<u8> = (0..400u32).map(|i| i as u8).collect();
        let path = dir.join("a.wav");
        std::fs::write(&path, wav_bytes(&spec, &audio)).unwrap();
        let mut source = Source::open(&path, SampleFormat::Wav, None, None)
            .await
            .unwrap();
        assert_eq!(source.spec.format, SampleFormat::S16le);
        assert_eq!(source.spec.frame_bytes(), 4);
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = source.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, audio, "the trailing LIST chunk is not audio");
        assert!(Source::open(&path, SampleFormat::S16le, None, Some(1))
            .await
            .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
