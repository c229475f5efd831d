//! Probe a source, pick its audio track, decode it packet by packet into
//! little-endian integer PCM (see [`super::depth`]).

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use std::io::SeekFrom;

use super::depth::{self, LOSSY_BYTES_PER_SAMPLE};
use super::mp4_timing::Mp4Timing;
use super::opus::{OpusStream, OPUS_RATE};
use super::trim::Trim;
use super::{MediaError, SourceCodec};
use crate::pcm::PcmLayout;

/// Most channels FLAC holds.
const MAX_CHANNELS: usize = 8;

/// Highest sample rate FLAC's STREAMINFO and frame headers declare, in Hz.
const MAX_SAMPLE_RATE: u32 = 655_350;

/// Most sample frames one packet may declare, before its decoder is made:
/// decoders allocate their output buffer for the declared packet size
/// (ALAC's from its "magic cookie", up to 2^32 frames). The longest real
/// packets are FLAC's 65535-frame blocks; 2^18 frames of 8 channels of
/// 32-bit samples are 8 MiB. Found by the `media` fuzz target: a 1618-byte
/// M4A that made symphonia allocate 21 MiB.
const MAX_FRAMES_PER_PACKET: u64 = 1 << 18;

/// Packets read before the first audio is decoded, at most: a container
/// whose audio track yields nothing for this long is refused, not read to
/// the end (other tracks' packets are skipped on the way).
const MAX_PACKETS_BEFORE_AUDIO: usize = 4096;

/// How a source may be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// Store floating-point PCM rounded to this many bytes per sample (2 or
    /// 3) instead of refusing it (`float_pcm`); the result is not lossless.
    pub float_bytes: Option<usize>,
}

/// What a source holds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaInfo {
    /// The audio codec.
    pub codec: SourceCodec,
    /// The container's short name (`wav`, `mp4`, `ogg`, `mkv`, …).
    pub container: &'static str,
    /// Samples per second, as decoded (never resampled).
    pub sample_rate: u32,
    /// Channels and stored width.
    pub layout: PcmLayout,
}

impl MediaInfo {
    /// Whether the stored PCM is exactly the source's samples.
    pub fn lossless(&self) -> bool {
        self.codec.lossless()
    }
}

/// What decodes the track's packets.
enum PacketDecoder {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(Box<OpusStream>),
}

/// One packet's audio, copied into the decoder's `ints` or `floats`.
struct PacketAudio {
    rate: u32,
    channels: usize,
    /// In `floats` (else in `ints`, left-justified).
    float: bool,
    /// The source's bits per sample, if the codec says.
    declared_bits: Option<u32>,
    /// The width of the decoder's sample type.
    intrinsic_bits: u32,
}

/// A source being decoded; see the module docs. Synchronous: every call
/// may read and decode, so it belongs on a blocking thread.
pub struct MediaDecoder {
    format: Box<dyn FormatReader>,
    decoder: PacketDecoder,
    track: u32,
    info: MediaInfo,
    /// PCM decoded while opening (the first packet's), returned first.
    pending: Vec<u8>,
    /// An MP4's declared timing, turned into `trim` once the rate is known.
    mp4: Option<Mp4Timing>,
    /// Gapless trimming symphonia does not do itself.
    trim: Trim,
    /// One packet's PCM before trimming.
    decoded: Vec<u8>,
    /// Set once the decoder panicked: every later call fails.
    poisoned: bool,
    options: DecodeOptions,
    ints: Vec<i32>,
    floats: Vec<f64>,
}

impl MediaDecoder {
    /// Recognises the container from the content (no name or type hint),
    /// picks the default audio track and decodes up to its first audio, so
    /// the stored format is known and a source that cannot be decoded at all
    /// is refused before anything is produced.
    pub fn open(source: Box<dyn MediaSource>) -> Result<Self, MediaError> {
        Self::open_with(source, DecodeOptions::default())
    }

    /// [`MediaDecoder::open`] with options.
    pub fn open_with(
        source: Box<dyn MediaSource>,
        options: DecodeOptions,
    ) -> Result<Self, MediaError> {
        contained(|| Self::open_inner(source, options))
    }

    fn open_inner(
        mut source: Box<dyn MediaSource>,
        options: DecodeOptions,
    ) -> Result<Self, MediaError> {
        let mp4 = mp4_timing(&mut source)?;
        let stream = MediaSourceStream::new(source, Default::default());
        let format = symphonia::default::get_probe()
            .probe(
                &Hint::new(),
                stream,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                // Nothing recognised the content; any other refusal comes
                // from the reader of a recognised container.
                SymphoniaError::Unsupported(what) if what.starts_with("core (probe)") => {
                    MediaError::Unrecognized
                }
                SymphoniaError::Unsupported(what) => MediaError::UnsupportedCodec(what.to_string()),
                other => MediaError::from(other),
            })?;
        let container = container_name(format.format_info().short_name);
        let track = format
            .default_track(TrackType::Audio)
            .ok_or(MediaError::NoAudioTrack)?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or(MediaError::NoAudioTrack)?
            .clone();
        let track = track.id;
        let codec = if SourceCodec::is_float_pcm(params.codec) {
            if options.float_bytes.is_none() {
                return Err(MediaError::FloatPcm);
            }
            SourceCodec::FloatPcm
        } else {
            SourceCodec::from_id(params.codec)
                .ok_or_else(|| MediaError::UnsupportedCodec(codec_name(&params)))?
        };
        check_declared_sizes(&params)?;
        let decoder = if codec == SourceCodec::Opus {
            let opus = OpusStream::new(params.extra_data.as_deref())?;
            PacketDecoder::Opus(Box::new(opus))
        } else {
            let made = symphonia::default::get_codecs()
                .make_audio_decoder(&params, &AudioDecoderOptions::default().gapless(true))
                .map_err(|e| match e {
                    SymphoniaError::Unsupported(what) => {
                        MediaError::UnsupportedCodec(format!("{} ({what})", codec.as_str()))
                    }
                    other => MediaError::from(other),
                })?;
            PacketDecoder::Symphonia(made)
        };
        let mut this = Self {
            format,
            decoder,
            track,
            info: MediaInfo {
                codec,
                container,
                sample_rate: 0,
                layout: PcmLayout {
                    channels: 1,
                    bytes_per_sample: 2,
                },
            },
            pending: Vec::new(),
            mp4,
            trim: Trim::none(),
            decoded: Vec::new(),
            poisoned: false,
            options,
            ints: Vec::new(),
            floats: Vec::new(),
        };
        this.first_audio()?;
        Ok(this)
    }

    /// What is being decoded, as stored.
    pub fn info(&self) -> MediaInfo {
        self.info
    }

    /// Appends the next decoded PCM to `out` (at least one sample frame
    /// unless the source is over); `Ok(false)` once it is over.
    pub fn next_pcm(&mut self, out: &mut Vec<u8>) -> Result<bool, MediaError> {
        if self.poisoned {
            return Err(panicked());
        }
        let before = out.len();
        let result = contained(|| self.next_pcm_inner(out));
        if result.as_ref().is_err_and(|e| *e == panicked()) {
            // The decoder's state is unknown after a panic: nothing more
            // from it, and nothing half-converted.
            self.poisoned = true;
            out.truncate(before);
        }
        result
    }

    fn next_pcm_inner(&mut self, out: &mut Vec<u8>) -> Result<bool, MediaError> {
        if !self.pending.is_empty() {
            out.append(&mut self.pending);
            return Ok(true);
        }
        if self.trim.exhausted() {
            return Ok(false);
        }
        loop {
            let Some(packet) = self.format.next_packet()? else {
                return Ok(false);
            };
            if packet.track_id != self.track {
                continue;
            }
            let Some(audio) = self.decode_packet(&packet)? else {
                continue;
            };
            if audio.rate != self.info.sample_rate || audio.channels != self.info.layout.channels {
                return Err(MediaError::FormatChanged);
            }
            self.decoded.clear();
            convert(
                &audio,
                self.info,
                &self.ints,
                &self.floats,
                &mut self.decoded,
            )?;
            let before = out.len();
            self.trim
                .apply(&self.decoded, self.info.layout.block_align(), out);
            if out.len() > before {
                return Ok(true);
            }
            if self.trim.exhausted() {
                return Ok(false);
            }
        }
    }

    /// Decodes one packet into `ints` or `floats`; `None` if it gave no
    /// audio (a header, a packet trimmed away whole).
    fn decode_packet(&mut self, packet: &Packet) -> Result<Option<PacketAudio>, MediaError> {
        match &mut self.decoder {
            PacketDecoder::Opus(opus) => {
                self.floats.clear();
                if opus.decode(packet, &mut self.floats)? == 0 {
                    return Ok(None);
                }
                Ok(Some(PacketAudio {
                    rate: OPUS_RATE,
                    channels: opus.channels(),
                    float: true,
                    declared_bits: None,
                    intrinsic_bits: 32,
                }))
            }
            PacketDecoder::Symphonia(decoder) => {
                let buffer = decoder.decode(packet)?;
                if buffer.frames() == 0 {
                    return Ok(None);
                }
                let spec = buffer.spec();
                let (rate, channels) = (spec.rate(), spec.channels().count());
                let float = is_float(&buffer);
                let intrinsic_bits = intrinsic_bits(&buffer);
                if float {
                    self.floats.clear();
                    buffer.copy_to_vec_interleaved(&mut self.floats);
                } else {
                    self.ints.clear();
                    buffer.copy_to_vec_interleaved(&mut self.ints);
                }
                // Some decoders (ALAC) learn the bits per sample from the
                // first packet, so the parameters are read after it.
                let params = decoder.codec_params();
                let declared_bits = params.bits_per_sample.or_else(|| alac_bit_depth(params));
                Ok(Some(PacketAudio {
                    rate,
                    channels,
                    float,
                    declared_bits,
                    intrinsic_bits,
                }))
            }
        }
    }

    /// Decodes up to the first audio, fixing the stored format from it.
    fn first_audio(&mut self) -> Result<(), MediaError> {
        for _ in 0..MAX_PACKETS_BEFORE_AUDIO {
            let Some(packet) = self.format.next_packet()? else {
                // No audio at all: a track with no packets.
                return Err(MediaError::NoAudioTrack);
            };
            if packet.track_id != self.track {
                continue;
            }
            let Some(audio) = self.decode_packet(&packet)? else {
                continue;
            };
            let channels = audio.channels;
            if channels == 0 {
                return Err(MediaError::Corrupt("the audio declares no channels".into()));
            }
            if channels > MAX_CHANNELS {
                return Err(MediaError::TooManyChannels(channels));
            }
            let rate = audio.rate;
            if rate == 0 || rate > MAX_SAMPLE_RATE {
                return Err(MediaError::UnsupportedSampleRate(rate));
            }
            let bytes_per_sample = if self.info.codec == SourceCodec::FloatPcm {
                self.options
                    .float_bytes
                    .filter(|b| (2..=3).contains(b))
                    .ok_or(MediaError::FloatPcm)?
            } else if !self.info.codec.lossless() {
                LOSSY_BYTES_PER_SAMPLE
            } else if audio.float {
                return Err(MediaError::FloatPcm);
            } else {
                depth::integer_bytes(audio.declared_bits.unwrap_or(audio.intrinsic_bits))?
            };
            self.info.sample_rate = rate;
            self.info.layout = PcmLayout {
                channels,
                bytes_per_sample,
            };
            let info = self.info;
            let mut decoded = Vec::new();
            convert(&audio, info, &self.ints, &self.floats, &mut decoded)?;
            if let Some(timing) = self.mp4 {
                self.trim = Trim::from_mp4(timing, rate);
            }
            let mut pending = Vec::new();
            self.trim
                .apply(&decoded, info.layout.block_align(), &mut pending);
            self.pending = pending;
            return Ok(());
        }
        Err(MediaError::NoAudioTrack)
    }
}

/// Runs `f`, turning a panic (symphonia's, on input it did not expect)
/// into [`panicked`]: a hostile file is refused like a corrupt one and
/// never takes its thread down. The fuzz target `media` finds such inputs.
fn contained<T>(f: impl FnOnce() -> Result<T, MediaError>) -> Result<T, MediaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| Err(panicked()))
}

/// What a panic in the decoder is reported as.
fn panicked() -> MediaError {
    MediaError::Corrupt("the decoder could not make sense of this input".into())
}

/// An MP4's timing (see [`super::trim`]), read from the start of a seekable
/// source that begins with an `ftyp` box; the source is left at its start.
fn mp4_timing(source: &mut Box<dyn MediaSource>) -> Result<Option<Mp4Timing>, MediaError> {
    if !source.is_seekable() {
        return Ok(None);
    }
    let mut head = [0u8; 8];
    let is_mp4 = source.read_exact(&mut head).is_ok() && &head[4..8] == b"ftyp";
    let timing = if is_mp4 {
        source
            .seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::Corrupt(e.to_string()))?;
        Mp4Timing::read(source)
    } else {
        None
    };
    source
        .seek(SeekFrom::Start(0))
        .map_err(|e| MediaError::Corrupt(e.to_string()))?;
    Ok(timing)
}

/// Appends one packet's audio as PCM in `info`'s layout.
fn convert(
    audio: &PacketAudio,
    info: MediaInfo,
    ints: &[i32],
    floats: &[f64],
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    let bytes = info.layout.bytes_per_sample;
    match (audio.float, info.codec.lossless()) {
        (true, true) => Err(MediaError::FloatPcm),
        (true, false) => {
            depth::push_float(floats, bytes, out);
            Ok(())
        }
        (false, true) => depth::push_integer(ints, bytes, out),
        (false, false) => {
            // A lossy decoder handing over integers: keep their value at
            // the stored width (widening is exact, narrowing rounds).
            let scaled: Vec<f64> = ints
                .iter()
                .map(|s| f64::from(*s) / 2_147_483_648.0)
                .collect();
            depth::push_float(&scaled, bytes, out);
            Ok(())
        }
    }
}

fn is_float(buffer: &GenericAudioBufferRef<'_>) -> bool {
    matches!(
        buffer,
        GenericAudioBufferRef::F32(_) | GenericAudioBufferRef::F64(_)
    )
}

/// The width of the buffer's sample type, when the codec does not say.
fn intrinsic_bits(buffer: &GenericAudioBufferRef<'_>) -> u32 {
    match buffer {
        GenericAudioBufferRef::U8(_) | GenericAudioBufferRef::S8(_) => 8,
        GenericAudioBufferRef::U16(_) | GenericAudioBufferRef::S16(_) => 16,
        GenericAudioBufferRef::U24(_) | GenericAudioBufferRef::S24(_) => 24,
        _ => 32,
    }
}

/// Refuses parameters that would make a decoder allocate more than the
/// bounds allow before reading a byte of audio.
fn check_declared_sizes(
    params: &symphonia::core::codecs::audio::AudioCodecParameters,
) -> Result<(), MediaError> {
    if let Some(channels) = params.channels.as_ref().map(|c| c.count()) {
        if channels > MAX_CHANNELS {
            return Err(MediaError::TooManyChannels(channels));
        }
    }
    let alac_frames = (params.codec == symphonia::core::codecs::audio::well_known::CODEC_ID_ALAC)
        .then_some(params.extra_data.as_deref())
        .flatten()
        .and_then(|c| symphonia_common::apple::audio::alac::MagicCookie::read(c).ok())
        .map(|c| u64::from(c.frame_length));
    for frames in [params.max_frames_per_packet, alac_frames]
        .into_iter()
        .flatten()
    {
        if frames > MAX_FRAMES_PER_PACKET {
            return Err(MediaError::Limit(format!(
                "packets of {frames} sample frames (at most {MAX_FRAMES_PER_PACKET})"
            )));
        }
    }
    Ok(())
}

/// ALAC's bit depth, from its configuration ("magic cookie"): symphonia's
/// ALAC decoder hands out left-justified 32-bit samples and does not set
/// `bits_per_sample`.
fn alac_bit_depth(params: &symphonia::core::codecs::audio::AudioCodecParameters) -> Option<u32> {
    if params.codec != symphonia::core::codecs::audio::well_known::CODEC_ID_ALAC {
        return None;
    }
    let cookie = params.extra_data.as_deref()?;
    symphonia_common::apple::audio::alac::MagicCookie::read(cookie)
        .ok()
        .map(|c| u32::from(c.bit_depth))
}

/// The API's name for a symphonia format reader.
fn container_name(short_name: &str) -> &'static str {
    match short_name {
        "wave" | "wav" => "wav",
        "aiff" => "aiff",
        "caf" => "caf",
        "isomp4" | "mp4" => "mp4",
        "ogg" => "ogg",
        "matroska" | "mkv" | "webm" => "mkv",
        "flac" => "flac",
        "mp3" | "mpa" => "mp3",
        "aac" | "adts" => "adts",
        _ => "other",
    }
}

/// A readable name for a codec this service does not take.
fn codec_name(params: &symphonia::core::codecs::audio::AudioCodecParameters) -> String {
    match symphonia::default::get_codecs().get_audio_decoder(params.codec) {
        Some(d) => d.codec.info.short_name.to_string(),
        None => format!("an audio codec ({})", params.codec),
    }
}
