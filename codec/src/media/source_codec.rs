//! What a source's audio was coded with.

use symphonia::core::codecs::audio::well_known as ids;
use symphonia::core::codecs::audio::AudioCodecId;

/// The codec of a decoded source, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCodec {
    /// Integer PCM (WAV, AIFF, CAF, MKV).
    Pcm,
    /// G.711 A-law, expanded to 16-bit linear (invertible, byte for byte).
    Alaw,
    /// G.711 μ-law, expanded to 16-bit linear; codes 0x7F and 0xFF both
    /// expand to 0, every other code round-trips.
    Mulaw,
    /// FLAC.
    Flac,
    /// Apple Lossless.
    Alac,
    /// MPEG-1/2 Layer III.
    Mp3,
    /// AAC (LC).
    Aac,
    /// Vorbis.
    Vorbis,
    /// Opus.
    Opus,
    /// Floating-point PCM, stored rounded to integers only when the client
    /// asked for it (`float_to`): not lossless.
    FloatPcm,
}

impl SourceCodec {
    /// The name in `source_codec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pcm => "pcm",
            Self::Alaw => "alaw",
            Self::Mulaw => "mulaw",
            Self::Flac => "flac",
            Self::Alac => "alac",
            Self::Mp3 => "mp3",
            Self::Aac => "aac",
            Self::Vorbis => "vorbis",
            Self::Opus => "opus",
            Self::FloatPcm => "pcm_float",
        }
    }

    /// The codec a session's stored `encoding` names: a decoded upload's is
    /// `container/codec` (`mp4/aac`), G.711 input's `mulaw` or `alaw`, and
    /// every other (`wav`, `s16le`, `s24le`, `u8`) is PCM.
    pub fn of_encoding(encoding: &str) -> Self {
        let codec = encoding.rsplit('/').next().unwrap_or(encoding);
        [
            Self::Alaw,
            Self::Mulaw,
            Self::Flac,
            Self::Alac,
            Self::Mp3,
            Self::Aac,
            Self::Vorbis,
            Self::Opus,
            Self::FloatPcm,
        ]
        .into_iter()
        .find(|c| c.as_str() == codec)
        .unwrap_or(Self::Pcm)
    }

    /// Whether the FLAC holds exactly the source's samples. G.711 counts as
    /// lossless: its expansion is exact and is what the source means.
    pub fn lossless(self) -> bool {
        matches!(
            self,
            Self::Pcm | Self::Alaw | Self::Mulaw | Self::Flac | Self::Alac
        )
    }

    /// The codec of a symphonia codec id, if it is one this service takes.
    /// Float PCM is not here: it is refused before (see `MediaError::FloatPcm`).
    pub fn from_id(id: AudioCodecId) -> Option<Self> {
        let integer_pcm = [
            ids::CODEC_ID_PCM_S32LE,
            ids::CODEC_ID_PCM_S32LE_PLANAR,
            ids::CODEC_ID_PCM_S32BE,
            ids::CODEC_ID_PCM_S32BE_PLANAR,
            ids::CODEC_ID_PCM_S24LE,
            ids::CODEC_ID_PCM_S24LE_PLANAR,
            ids::CODEC_ID_PCM_S24BE,
            ids::CODEC_ID_PCM_S24BE_PLANAR,
            ids::CODEC_ID_PCM_S16LE,
            ids::CODEC_ID_PCM_S16LE_PLANAR,
            ids::CODEC_ID_PCM_S16BE,
            ids::CODEC_ID_PCM_S16BE_PLANAR,
            ids::CODEC_ID_PCM_S8,
            ids::CODEC_ID_PCM_S8_PLANAR,
            ids::CODEC_ID_PCM_U32LE,
            ids::CODEC_ID_PCM_U32LE_PLANAR,
            ids::CODEC_ID_PCM_U32BE,
            ids::CODEC_ID_PCM_U32BE_PLANAR,
            ids::CODEC_ID_PCM_U24LE,
            ids::CODEC_ID_PCM_U24LE_PLANAR,
            ids::CODEC_ID_PCM_U24BE,
            ids::CODEC_ID_PCM_U24BE_PLANAR,
            ids::CODEC_ID_PCM_U16LE,
            ids::CODEC_ID_PCM_U16LE_PLANAR,
            ids::CODEC_ID_PCM_U16BE,
            ids::CODEC_ID_PCM_U16BE_PLANAR,
            ids::CODEC_ID_PCM_U8,
            ids::CODEC_ID_PCM_U8_PLANAR,
        ];
        Some(match id {
            _ if integer_pcm.contains(&id) => Self::Pcm,
            ids::CODEC_ID_PCM_ALAW => Self::Alaw,
            ids::CODEC_ID_PCM_MULAW => Self::Mulaw,
            ids::CODEC_ID_FLAC => Self::Flac,
            ids::CODEC_ID_ALAC => Self::Alac,
            ids::CODEC_ID_MP3 => Self::Mp3,
            ids::CODEC_ID_AAC => Self::Aac,
            ids::CODEC_ID_VORBIS => Self::Vorbis,
            ids::CODEC_ID_OPUS => Self::Opus,
            _ => return None,
        })
    }

    /// Whether `id` is float PCM.
    pub fn is_float_pcm(id: AudioCodecId) -> bool {
        [
            ids::CODEC_ID_PCM_F32LE,
            ids::CODEC_ID_PCM_F32LE_PLANAR,
            ids::CODEC_ID_PCM_F32BE,
            ids::CODEC_ID_PCM_F32BE_PLANAR,
            ids::CODEC_ID_PCM_F64LE,
            ids::CODEC_ID_PCM_F64LE_PLANAR,
            ids::CODEC_ID_PCM_F64BE,
            ids::CODEC_ID_PCM_F64BE_PLANAR,
        ]
        .contains(&id)
    }
}
