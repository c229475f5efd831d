//! Incremental, bounded RIFF/WAVE parser.
//!
//! Bytes arrive in pieces split anywhere (inside a chunk header, inside the
//! `fmt ` body, inside a sample). [`WavParser::next`] consumes what it can and
//! yields [`WavEvent`]s: the format once the `data` chunk starts, then slices of
//! raw sample bytes, then the end of the declared data. It never allocates from
//! a size the input declares: the only buffer it keeps is the `fmt ` body,
//! capped by [`MAX_FMT_CHUNK_BYTES`]; other chunks are skipped as they stream by.
//!
//! Unlike `hound`, it takes streaming headers: a `data` size of `0xFFFFFFFF`
//! (or `0` under a RIFF size of `0`/`0xFFFFFFFF`, as ffmpeg writes when piping)
//! means "until the client says end".

use thiserror::Error;

/// Largest `fmt ` chunk accepted, in bytes. `WAVEFORMATEXTENSIBLE` is 40 bytes;
/// anything near this cap is already absurd, so larger sizes are rejected as
/// malformed instead of buffered.
pub const MAX_FMT_CHUNK_BYTES: u32 = 1024;

/// Most channels FLAC can hold (inclusive).
pub const MAX_CHANNELS: u16 = 8;

/// Highest sample rate a FLAC frame header can state exactly (inclusive):
/// 65535 tens of Hz. STREAMINFO holds up to 2^20-1 Hz, but a frame could then
/// not name its rate, so higher rates are refused as unsupported.
pub const MAX_SAMPLE_RATE_HZ: u32 = 655_350;

/// Whether a FLAC frame header can state `rate` exactly: any rate up to
/// 65,535 Hz, and above that multiples of 10 Hz up to [`MAX_SAMPLE_RATE_HZ`].
pub fn frame_header_can_state(rate: u32) -> bool {
    (1..=65_535).contains(&rate)
        || ((1..=MAX_SAMPLE_RATE_HZ).contains(&rate) && rate.is_multiple_of(10))
}

/// A RIFF or `data` size that streaming writers use for "unknown length".
pub const UNKNOWN_SIZE: u32 = 0xFFFF_FFFF;

/// Default cap on bytes of chunks skipped before `data` (LIST, JUNK, bext,
/// embedded pictures…), in bytes. Skipping costs no memory, only time and
/// bandwidth; the cap keeps a client from sending an endless "header".
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024 * 1024;

const RIFF_HEADER_BYTES: usize = 12;
const CHUNK_HEADER_BYTES: usize = 8;
const FMT_MIN_BYTES: u32 = 16;
const EXTENSIBLE_MIN_BYTES: u32 = 40;
const FORMAT_PCM: u16 = 0x0001;
const FORMAT_IEEE_FLOAT: u16 = 0x0003;
const FORMAT_ALAW: u16 = 0x0006;
const FORMAT_MULAW: u16 = 0x0007;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID; bytes 0..2 carry the format tag.
const SUBTYPE_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How the service should treat a rejected header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavErrorKind {
    /// The header is broken or not WAV at all.
    Malformed,
    /// A valid WAV that FLAC (or this service) cannot hold.
    Unsupported,
    /// The header is larger than the configured bound.
    TooLarge,
}

/// Why a WAV header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WavError {
    /// No `RIFF…WAVE` at the start.
    #[error("the stream does not start with a RIFF/WAVE header")]
    NotRiff,
    /// RIFX (big-endian) or RF64.
    #[error(
        "big-endian RIFX and 64-bit RF64 files are not supported; send little-endian RIFF/WAVE"
    )]
    UnsupportedContainer,
    /// A `fmt ` chunk too short or too long (its size).
    #[error("the fmt chunk is {0} bytes; it must be between 16 and 1024")]
    FmtSize(u32),
    /// A second `fmt ` chunk.
    #[error("the file has more than one fmt chunk")]
    DuplicateFmt,
    /// The `data` chunk before any `fmt `.
    #[error("the data chunk comes before the fmt chunk")]
    DataBeforeFmt,
    /// Zero channels declared.
    #[error("the header declares zero channels")]
    ZeroChannels,
    /// A sample rate of zero declared.
    #[error("the header declares a sample rate of zero")]
    ZeroSampleRate,
    /// Zero bits per sample declared.
    #[error("the header declares zero bits per sample")]
    ZeroBitsPerSample,
    /// Block align that does not match channels × sample bytes.
    #[error("block align is {block_align} but {channels} channels of {bytes_per_sample}-byte samples need {expected}")]
    BadBlockAlign {
        /// As declared.
        block_align: u16,
        /// As declared.
        channels: u16,
        /// From the declared bits per sample.
        bytes_per_sample: u16,
        /// What the channels and sample size need.
        expected: u32,
    },
    /// A malformed `WAVE_FORMAT_EXTENSIBLE` extension (what is wrong).
    #[error("WAVE_FORMAT_EXTENSIBLE header is malformed: {0}")]
    BadExtensible(&'static str),
    /// A chunk id that is not text (the id as read).
    #[error("a chunk id is not text ({0:02X?}): the file is corrupt or its chunks are misaligned")]
    BadChunkId([u8; 4]),
    /// The input ended before the audio data.
    #[error("the input ended inside the WAV header, before any audio data")]
    TruncatedHeader,
    /// A known encoding that is not integer PCM (its name).
    #[error("{0} audio is not supported; send integer PCM")]
    UnsupportedEncoding(&'static str),
    /// An unknown format tag.
    #[error("format tag 0x{0:04X} is not supported; send integer PCM")]
    UnsupportedFormatTag(u16),
    /// A bit depth other than 8, 16 or 24.
    #[error("{0}-bit samples are not supported; send 8-, 16- or 24-bit integer PCM")]
    UnsupportedBitDepth(u16),
    /// More than FLAC's 8 channels.
    #[error("{0} channels is more than FLAC's 8")]
    TooManyChannels(u16),
    /// A sample rate a FLAC frame header cannot state.
    #[error("a sample rate of {0} Hz cannot be stated in a FLAC frame header: use up to 65535 Hz, or a multiple of 10 Hz up to {MAX_SAMPLE_RATE_HZ} Hz")]
    SampleRateTooHigh(u32),
    /// More header bytes before `data` than the limit allows (the limit).
    #[error("more than {0} bytes of chunks came before the audio data")]
    HeaderTooLarge(u64),
}

impl WavError {
    /// Whether the file is a WAV of G.711 (A-law or µ-law), which this
    /// parser refuses but `media` decodes: an upload goes there instead.
    pub fn is_g711(&self) -> bool {
        matches!(self, Self::UnsupportedEncoding("A-law" | "µ-law"))
    }

    /// Whether the file is a WAV of floating-point PCM, which `media`
    /// decodes when the client asks for the conversion (`float_to`).
    pub fn is_float(&self) -> bool {
        matches!(self, Self::UnsupportedEncoding("floating-point"))
    }

    /// Stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotRiff => "not_wav",
            Self::UnsupportedContainer => "unsupported_container",
            Self::FmtSize(_) => "bad_fmt_size",
            Self::DuplicateFmt => "duplicate_fmt",
            Self::DataBeforeFmt => "data_before_fmt",
            Self::ZeroChannels => "zero_channels",
            Self::ZeroSampleRate => "zero_sample_rate",
            Self::ZeroBitsPerSample => "zero_bits_per_sample",
            Self::BadBlockAlign { .. } => "bad_block_align",
            Self::BadExtensible(_) => "bad_extensible",
            Self::BadChunkId(_) => "bad_chunk_id",
            Self::TruncatedHeader => "truncated_header",
            Self::UnsupportedEncoding(_) | Self::UnsupportedFormatTag(_) => "unsupported_format",
            Self::UnsupportedBitDepth(_) => "unsupported_bit_depth",
            Self::TooManyChannels(_) => "too_many_channels",
            Self::SampleRateTooHigh(_) => "unsupported_sample_rate",
            Self::HeaderTooLarge(_) => "header_too_large",
        }
    }

    /// Whether the input is broken, unsupported or over a bound.
    pub fn kind(&self) -> WavErrorKind {
        match self {
            Self::NotRiff
            | Self::FmtSize(_)
            | Self::DuplicateFmt
            | Self::DataBeforeFmt
            | Self::ZeroChannels
            | Self::ZeroSampleRate
            | Self::ZeroBitsPerSample
            | Self::BadBlockAlign { .. }
            | Self::BadExtensible(_)
            | Self::BadChunkId(_)
            | Self::TruncatedHeader => WavErrorKind::Malformed,
            Self::UnsupportedContainer
            | Self::UnsupportedEncoding(_)
            | Self::UnsupportedFormatTag(_)
            | Self::UnsupportedBitDepth(_)
            | Self::TooManyChannels(_)
            | Self::SampleRateTooHigh(_) => WavErrorKind::Unsupported,
            Self::HeaderTooLarge(_) => WavErrorKind::TooLarge,
        }
    }
}

/// The audio format a WAV header declares, already checked to be one the
/// service can encode losslessly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Interleaved channels, 1..=8.
    pub channels: u16,
    /// Samples per second per channel, 1..=[`MAX_SAMPLE_RATE_HZ`].
    pub sample_rate: u32,
    /// Bits of each sample's container: 8, 16 or 24. 8-bit WAV is unsigned.
    pub container_bits: u16,
    /// Meaningful bits within the container (`wValidBitsPerSample`, or the
    /// declared bits for plain PCM). Informational: encoding uses the container.
    pub valid_bits: u16,
    /// Speaker mask from `WAVEFORMATEXTENSIBLE`, passed through as declared.
    pub channel_mask: Option<u32>,
    /// Declared length of the `data` chunk in bytes; `None` for a streaming header.
    pub data_len: Option<u32>,
}

impl WavFormat {
    /// Bytes per sample of one channel.
    pub fn bytes_per_sample(&self) -> usize {
        usize::from(self.container_bits / 8)
    }

    /// Bytes per sample frame (one sample of every channel).
    pub fn block_align(&self) -> usize {
        self.bytes_per_sample() * usize::from(self.channels)
    }
}

/// What the parser found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum WavEvent<'a> {
    /// The header is complete and valid; audio data follows.
    Format(WavFormat),
    /// Raw little-endian sample bytes from the `data` chunk, split anywhere.
    Audio(&'a [u8]),
    /// Every byte of the declared `data` chunk has arrived.
    DataEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    RiffHeader,
    ChunkHeader,
    Fmt {
        size: u32,
    },
    Skip {
        remaining: u64,
        pad: bool,
    },
    /// Where a pad byte should follow an odd-sized chunk. Writers that omit it
    /// are common; a pad byte must be zero and a chunk id never starts with
    /// zero, so a non-zero byte here is taken as the next chunk's first byte.
    Pad,
    Data {
        remaining: Option<u64>,
    },
    Done,
}

/// Incremental WAV parser; see the module docs.
#[derive(Debug)]
pub struct WavParser {
    state: State,
    /// Partial fixed-size header or `fmt ` body; never longer than [`MAX_FMT_CHUNK_BYTES`].
    scratch: Vec<u8>,
    riff_size: u32,
    format: Option<WavFormat>,
    header_bytes: u64,
    max_header_bytes: u64,
}

impl WavParser {
    /// A parser that rejects headers longer than `max_header_bytes` bytes.
    pub fn new(max_header_bytes: u64) -> Self {
        Self {
            state: State::RiffHeader,
            scratch: Vec::with_capacity(RIFF_HEADER_BYTES),
            riff_size: 0,
            format: None,
            header_bytes: 0,
            max_header_bytes,
        }
    }

    /// The format, once the header is complete.
    pub fn format(&self) -> Option<&WavFormat> {
        self.format.as_ref().filter(|_| self.in_data_or_after())
    }

    fn in_data_or_after(&self) -> bool {
        matches!(self.state, State::Data { .. } | State::Done)
    }

    /// Whether the declared `data` chunk has fully arrived.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Gives back `n` audio bytes that were handed out but will be sent again
    /// (their producer went away before they were used), so a declared data
    /// length still counts them. No effect outside the data chunk.
    pub fn unread(&mut self, n: u64) {
        if let State::Data {
            remaining: Some(remaining),
        } = self.state
        {
            self.state = State::Data {
                remaining: Some(remaining + n),
            };
        }
    }

    /// Checks that input may end here: the header must be complete.
    pub fn finish(&self) -> Result<(), WavError> {
        if self.in_data_or_after() {
            Ok(())
        } else {
            Err(WavError::TruncatedHeader)
        }
    }

    /// Consumes bytes from the front of `input` and returns the next event, or
    /// `None` when `input` is exhausted (or everything left is past the data
    /// chunk and ignored). Call repeatedly until it returns `None`.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<WavEvent<'a>>, WavError> {
        loop {
            match self.state {
                State::RiffHeader => {
                    // Check the magic as soon as it is here, so junk is
                    // refused at once rather than waiting for 12 bytes.
                    if self.scratch.len() < 4 && !self.fill(input, 4) {
                        return Ok(None);
                    }
                    check_magic(&self.scratch[..4])?;
                    if !self.fill(input, RIFF_HEADER_BYTES) {
                        return Ok(None);
                    }
                    self.parse_riff_header()?;
                }
                State::ChunkHeader => {
                    if !self.fill(input, CHUNK_HEADER_BYTES) {
                        return Ok(None);
                    }
                    if let Some(format) = self.parse_chunk_header()? {
                        return Ok(Some(WavEvent::Format(format)));
                    }
                }
                State::Fmt { size } => {
                    if !self.fill(input, size as usize) {
                        return Ok(None);
                    }
                    self.format = Some(parse_fmt(&self.scratch)?);
                    self.scratch.clear();
                    self.state = match size % 2 {
                        1 => State::Pad,
                        _ => State::ChunkHeader,
                    };
                }
                State::Skip { remaining, pad } => {
                    let n = remaining.min(input.len() as u64);
                    *input = &input[n as usize..];
                    if n < remaining {
                        self.state = State::Skip {
                            remaining: remaining - n,
                            pad,
                        };
                        return Ok(None);
                    }
                    self.state = if pad { State::Pad } else { State::ChunkHeader };
                }
                State::Pad => {
                    let Some(&first) = input.first() else {
                        return Ok(None);
                    };
                    if first == 0 {
                        *input = &input[1..];
                    }
                    self.state = State::ChunkHeader;
                }
                State::Data { remaining } => {
                    if remaining == Some(0) {
                        self.state = State::Done;
                        return Ok(Some(WavEvent::DataEnd));
                    }
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = remaining.map_or(input.len(), |r| r.min(input.len() as u64) as usize);
                    let (audio, rest) = input.split_at(n);
                    *input = rest;
                    self.state = State::Data {
                        remaining: remaining.map(|r| r - n as u64),
                    };
                    return Ok(Some(WavEvent::Audio(audio)));
                }
                State::Done => {
                    *input = &[];
                    return Ok(None);
                }
            }
        }
    }

    /// Moves bytes from `input` into `scratch` until it holds `want` bytes.
    fn fill(&mut self, input: &mut &[u8], want: usize) -> bool {
        let need = want - self.scratch.len();
        let n = need.min(input.len());
        self.scratch.extend_from_slice(&input[..n]);
        *input = &input[n..];
        self.scratch.len() == want
    }

    fn count_header_bytes(&mut self, n: u64) -> Result<(), WavError> {
        self.header_bytes += n;
        if self.header_bytes > self.max_header_bytes {
            return Err(WavError::HeaderTooLarge(self.max_header_bytes));
        }
        Ok(())
    }

    fn parse_riff_header(&mut self) -> Result<(), WavError> {
        let h = &self.scratch;
        if &h[8..12] != b"WAVE" {
            return Err(WavError::NotRiff);
        }
        self.riff_size = le_u32(&h[4..8]);
        self.scratch.clear();
        self.count_header_bytes(RIFF_HEADER_BYTES as u64)?;
        self.state = State::ChunkHeader;
        Ok(())
    }

    /// Returns the format when this header opens the `data` chunk.
    fn parse_chunk_header(&mut self) -> Result<Option<WavFormat>, WavError> {
        let id: [u8; 4] = [
            self.scratch[0],
            self.scratch[1],
            self.scratch[2],
            self.scratch[3],
        ];
        let size = le_u32(&self.scratch[4..8]);
        self.scratch.clear();
        if !id.iter().all(|b| (0x20..=0x7E).contains(b)) {
            return Err(WavError::BadChunkId(id));
        }
        self.count_header_bytes(CHUNK_HEADER_BYTES as u64)?;
        match &id {
            b"fmt " => {
                if self.format.is_some() {
                    return Err(WavError::DuplicateFmt);
                }
                if !(FMT_MIN_BYTES..=MAX_FMT_CHUNK_BYTES).contains(&size) {
                    return Err(WavError::FmtSize(size));
                }
                self.count_header_bytes(u64::from(size))?;
                self.state = State::Fmt { size };
                Ok(None)
            }
            b"data" => {
                let mut format = self.format.ok_or(WavError::DataBeforeFmt)?;
                let streaming = size == UNKNOWN_SIZE
                    || (size == 0 && (self.riff_size == 0 || self.riff_size == UNKNOWN_SIZE));
                format.data_len = (!streaming).then_some(size);
                self.format = Some(format);
                self.state = State::Data {
                    remaining: format.data_len.map(u64::from),
                };
                Ok(Some(format))
            }
            _ => {
                self.count_header_bytes(u64::from(size))?;
                self.state = State::Skip {
                    remaining: u64::from(size),
                    pad: size % 2 == 1,
                };
                Ok(None)
            }
        }
    }
}

fn check_magic(magic: &[u8]) -> Result<(), WavError> {
    match magic {
        b"RIFF" => Ok(()),
        b"RIFX" | b"RF64" => Err(WavError::UnsupportedContainer),
        _ => Err(WavError::NotRiff),
    }
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates a complete `fmt ` body (16..=[`MAX_FMT_CHUNK_BYTES`] bytes).
fn parse_fmt(b: &[u8]) -> Result<WavFormat, WavError> {
    let tag = le_u16(&b[0..2]);
    let channels = le_u16(&b[2..4]);
    let sample_rate = le_u32(&b[4..8]);
    let block_align = le_u16(&b[12..14]);
    let bits = le_u16(&b[14..16]);

    let (effective_tag, valid_bits, channel_mask) = if tag == FORMAT_EXTENSIBLE {
        if b.len() < EXTENSIBLE_MIN_BYTES as usize {
            return Err(WavError::BadExtensible(
                "the fmt chunk is shorter than 40 bytes",
            ));
        }
        let cb_size = usize::from(le_u16(&b[16..18]));
        if cb_size < 22 {
            return Err(WavError::BadExtensible("cbSize is below 22"));
        }
        if 18 + cb_size > b.len() {
            return Err(WavError::BadExtensible(
                "cbSize runs past the end of the fmt chunk",
            ));
        }
        if b[26..40] != SUBTYPE_GUID_TAIL {
            return Err(WavError::UnsupportedEncoding(
                "non-standard sub-format GUID",
            ));
        }
        let valid = le_u16(&b[18..20]);
        (le_u16(&b[24..26]), valid, Some(le_u32(&b[20..24])))
    } else {
        (tag, bits, None)
    };

    match effective_tag {
        FORMAT_PCM => {}
        FORMAT_IEEE_FLOAT => return Err(WavError::UnsupportedEncoding("floating-point")),
        FORMAT_ALAW => return Err(WavError::UnsupportedEncoding("A-law")),
        FORMAT_MULAW => return Err(WavError::UnsupportedEncoding("µ-law")),
        other => return Err(WavError::UnsupportedFormatTag(other)),
    }
    if channels == 0 {
        return Err(WavError::ZeroChannels);
    }
    if sample_rate == 0 {
        return Err(WavError::ZeroSampleRate);
    }
    if bits == 0 {
        return Err(WavError::ZeroBitsPerSample);
    }
    if tag == FORMAT_EXTENSIBLE {
        if !bits.is_multiple_of(8) {
            return Err(WavError::BadExtensible(
                "container bits are not a multiple of 8",
            ));
        }
        if valid_bits > bits {
            return Err(WavError::BadExtensible(
                "valid bits exceed the container's bits",
            ));
        }
    }
    let bytes_per_sample = bits.div_ceil(8);
    let expected = u32::from(channels) * u32::from(bytes_per_sample);
    if u32::from(block_align) != expected {
        return Err(WavError::BadBlockAlign {
            block_align,
            channels,
            bytes_per_sample,
            expected,
        });
    }
    if channels > MAX_CHANNELS {
        return Err(WavError::TooManyChannels(channels));
    }
    if !(1..=3).contains(&bytes_per_sample) {
        return Err(WavError::UnsupportedBitDepth(bits));
    }
    if !frame_header_can_state(sample_rate) {
        return Err(WavError::SampleRateTooHigh(sample_rate));
    }
    Ok(WavFormat {
        channels,
        sample_rate,
        container_bits: bytes_per_sample * 8,
        valid_bits: if valid_bits == 0 { bits } else { valid_bits },
        channel_mask,
        data_len: None,
    })
}

#[cfg(test)]
#[path = "wav_tests.rs"]
mod tests;
