//! The query parameters of `/convert` and `/upload`, their range checks,
//! and `/upload`'s answer.

use flacstream_codec::media::DecodeOptions;
use serde::{Deserialize, Serialize};

use crate::api::stream::StreamParams;
use crate::error::ApiError;

/// Query parameters of `/convert`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConvertParams {
    /// Compression level 0–8.
    #[param(minimum = 0, maximum = 8, example = 5)]
    pub level: Option<u8>,
    /// Samples per block.
    #[param(minimum = 32, maximum = 16384, example = 4096)]
    pub block_size: Option<usize>,
    /// Store floating-point PCM rounded to 16 or 24 bits instead of
    /// refusing it (`float_pcm`); the FLAC is then not lossless.
    #[param(example = 24)]
    pub float_to: Option<u8>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<crate::auth::TokenParameter>,
}

/// The level and block size, range-checked as `/stream` checks them.
pub fn checked_stream_params(
    level: Option<u8>,
    block_size: Option<usize>,
) -> Result<StreamParams, ApiError> {
    StreamParams::parse(&format!(
        "{}{}",
        level.map_or(String::new(), |l| format!("level={l}&")),
        block_size.map_or(String::new(), |b| format!("block_size={b}"))
    ))
}

/// `float_to` (16 or 24) as decode options.
pub fn decode_options(float_to: Option<u8>) -> Result<DecodeOptions, ApiError> {
    let float_bytes = match float_to {
        None => None,
        Some(16) => Some(2),
        Some(24) => Some(3),
        Some(other) => {
            return Err(ApiError::BadParameter(format!(
                "float_to must be 16 or 24, got {other}"
            )))
        }
    };
    Ok(DecodeOptions { float_bytes })
}

/// Query parameters of `/upload`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Compression level 0–8.
    #[param(minimum = 0, maximum = 8, example = 5)]
    pub level: Option<u8>,
    /// Samples per block.
    #[param(minimum = 32, maximum = 16384, example = 4096)]
    pub block_size: Option<usize>,
    /// Store floating-point PCM rounded to 16 or 24 bits (see
    /// [`ConvertParams::float_to`]).
    #[param(example = 24)]
    pub float_to: Option<u8>,
    /// Owner, for listing.
    #[param(example = "ann")]
    pub user_id: Option<String>,
    /// The new session's id, chosen by the client; see
    /// [`crate::ids::parse_chosen_id`].
    pub session_id: Option<String>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<crate::auth::TokenParameter>,
}

/// The answer to `/upload`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// The new session.
    pub session_id: String,
    /// Samples per channel stored.
    pub samples: u64,
    /// MD5 of the audio.
    pub md5: String,
    /// What the upload's audio was coded with (`pcm`, `mp3`, `aac`, …).
    #[schema(value_type = String)]
    pub source_codec: &'static str,
    /// Whether the FLAC holds exactly the upload's samples.
    pub lossless: bool,
    /// Where to find it.
    pub links: UploadLinks,
}

/// Links to an uploaded session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadLinks {
    /// The session's metadata.
    pub session: String,
    /// Its FLAC.
    pub audio: String,
    /// The uploaded bytes, if kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}
