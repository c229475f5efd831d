//! The JSON messages on the wire: the WebSocket protocol's text messages
//! (docs/protocol.md) and the bodies the service's own clients read back.

use base64::Engine;
use flacstream_actors::registry::SessionId;
use flacstream_actors::session::{DoneSummary, EndReason, IngestAck};
use flacstream_codec::g711::Law;
use serde::{Deserialize, Serialize};

/// A text message from the client.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// No more audio will be sent.
    End,
    /// A session control (`/api/ws/audio` only).
    Control {
        /// What to do.
        action: ControlAction,
    },
}

/// Actions a control message can ask for.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Finalize the session: flush, write the final STREAMINFO, close 1000.
    CloseSession,
}

impl ClientMessage {
    /// Parses a text message, with a sentence for the client if it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "text messages must be {{\"type\":\"end\"}} or \
                     {{\"type\":\"control\",\"action\":\"close_session\"}}: {e}"
            )
        })
    }
}

/// To a producer: storage stopped taking the recording's writes, or takes
/// them again (docs/protocol.md, "Storage notices").
#[derive(Debug, Serialize)]
pub struct StorageMessage {
    /// Always `"storage"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `storage_unavailable` or `storage_available`.
    pub code: &'static str,
    /// For people.
    pub message: &'static str,
    /// Samples per channel durable now.
    pub samples_durable: u64,
}

impl StorageMessage {
    /// The notice for a change to `available`.
    pub fn new(available: bool, samples_durable: u64) -> Self {
        let (code, message) = if available {
            (
                "storage_available",
                "storage takes the recording's writes again; samples_durable catches up",
            )
        } else {
            (
                "storage_unavailable",
                "storage refuses the recording's writes; they are retried, samples_durable waits, \
                 nothing acknowledged as durable is lost",
            )
        };
        Self {
            kind: "storage",
            code,
            message,
            samples_durable,
        }
    }

    /// As JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Bytes per sample of a raw PCM `format` a session can take (`u8`,
/// `s16le`, `s24le`); `None` for anything else (`wav`, `s32le`, unknown).
/// Opening a session and taking one over read the stored name alike.
pub fn raw_bytes_per_sample(format: &str) -> Option<usize> {
    match format {
        "u8" => Some(1),
        "s16le" => Some(2),
        "s24le" => Some(3),
        _ => None,
    }
}

/// The G.711 law of a `format` (`alaw`, `mulaw`); `None` for anything else.
pub fn g711_law(format: &str) -> Option<Law> {
    match format {
        "alaw" => Some(Law::Alaw),
        "mulaw" => Some(Law::Mulaw),
        _ => None,
    }
}

/// The containers a session's `format` may name, decoded as they arrive:
/// the name, and the container it must turn out to be (as
/// `MediaInfo::container` names it). An MP4 is not here: it cannot be read
/// front to back ([`NEEDS_SEEKING_FORMATS`]).
pub const CONTAINER_FORMATS: [(&str, &str); 9] = [
    ("flac", "flac"),
    ("ogg", "ogg"),
    ("webm", "mkv"),
    ("mkv", "mkv"),
    ("mp3", "mp3"),
    ("aac", "adts"),
    ("aiff", "aiff"),
    ("caf", "caf"),
    ("matroska", "mkv"),
];

/// Container names a session refuses because their index may be at the
/// end: upload them (`POST /upload`) instead.
pub const NEEDS_SEEKING_FORMATS: [&str; 3] = ["mp4", "m4a", "mov"];

/// The container a `format` names, if it is one decoded as it arrives.
pub fn container_format(format: &str) -> Option<&'static str> {
    CONTAINER_FORMATS
        .iter()
        .find(|(name, _)| *name == format)
        .map(|(_, container)| *container)
}

/// Whether a session stored with `encoding` was a container decoded as it
/// arrived (`ogg`, or `ogg/opus` once its codec was known, an upload's
/// `mp4/aac`): its decoder's state was in one process only, so it cannot
/// go on elsewhere.
pub fn is_decoded_encoding(encoding: &str) -> bool {
    encoding.contains('/') || container_format(encoding).is_some()
}

/// The last text message of a completed stream.
#[derive(Debug, Serialize)]
pub struct DoneMessage {
    /// Always `"done"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The session.
    pub session_id: String,
    /// Why the session ended: `complete`, `closed`, `going_away`,
    /// `max_session_length` or `resume_window_expired`.
    pub reason: &'static str,
    /// Samples per channel.
    pub samples: u64,
    /// MD5 of the decoded audio, 32 lowercase hex digits.
    pub md5: String,
    /// The final 34-byte STREAMINFO body, base64: write it over bytes 8..42.
    pub streaminfo: String,
    /// Bytes of a trailing partial sample frame that were dropped.
    pub dropped_bytes: usize,
    /// FLAC frames sent.
    pub frames: u64,
    /// Frames stored verbatim because prediction would have been larger.
    pub verbatim_frames: u64,
    /// WAV bytes received.
    pub bytes_in: u64,
    /// FLAC bytes sent.
    pub bytes_out: u64,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: usize,
    /// Bits per sample in the FLAC stream.
    pub bits_per_sample: usize,
    /// What the audio was coded with before it became FLAC: `pcm` (WAV,
    /// raw PCM, AIFF, CAF), `mulaw`, `alaw`, `flac`, `alac`, `mp3`, `aac`,
    /// `vorbis`.
    pub source_codec: &'static str,
    /// Whether the FLAC holds exactly the source's samples (false for
    /// lossy sources: it holds their decode).
    pub lossless: bool,
    /// True when the server ended the stream because it is shutting down.
    pub going_away: bool,
}

impl From<&DoneSummary> for DoneMessage {
    fn from(s: &DoneSummary) -> Self {
        Self {
            kind: "done",
            session_id: s.session_id.to_string(),
            reason: s.reason.as_str(),
            samples: s.samples,
            md5: s.md5.iter().map(|b| format!("{b:02x}")).collect(),
            streaminfo: base64::engine::general_purpose::STANDARD.encode(s.streaminfo),
            dropped_bytes: s.dropped_bytes,
            frames: s.frames,
            verbatim_frames: s.verbatim_frames,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            sample_rate: s.sample_rate,
            channels: s.channels,
            bits_per_sample: s.bits_per_sample,
            source_codec: s.source.as_str(),
            lossless: s.source.lossless(),
            going_away: s.reason == EndReason::GoingAway,
        }
    }
}

impl DoneMessage {
    /// The message as JSON text.
    pub fn json(&self) -> String {
        // Numbers, booleans and strings always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Sent after each binary message on `/api/ws/audio` (unless `acks=false`).
#[derive(Debug, Serialize)]
pub struct AckMessage {
    /// Always `"ack"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The session.
    pub session_id: String,
    /// Binary messages taken so far.
    pub chunk_count: u64,
    /// Samples per channel accepted, in order; a resuming producer continues here.
    pub samples_received: u64,
    /// Samples per channel synced to the recording file (survive a crash).
    pub samples_durable: u64,
    /// A container session's bytes taken by its decoder; a resuming
    /// producer sends on from this byte. Absent for PCM sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_accepted: Option<u64>,
    /// The acknowledged message's chunk id (`GET /api/chunks/{chunk_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_id: Option<String>,
}

/// A chunk's metadata, live (`metadata=chunk`): `{"type":"chunk", …}`.
#[derive(Debug, Serialize)]
pub struct ChunkMessage<'a> {
    /// Always `"chunk"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The metadata, as `GET /api/chunks/{chunk_id}` answers it.
    #[serde(flatten)]
    pub chunk: &'a flacstream_actors::chunk_analysis::ChunkMetadata,
}

impl<'a> ChunkMessage<'a> {
    /// The message for `chunk`.
    pub fn new(chunk: &'a flacstream_actors::chunk_analysis::ChunkMetadata) -> Self {
        Self {
            kind: "chunk",
            chunk,
        }
    }

    /// The message as JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl AckMessage {
    /// The ack for `ack`.
    pub fn new(session_id: SessionId, ack: &IngestAck) -> Self {
        Self {
            kind: "ack",
            session_id: session_id.to_string(),
            chunk_count: ack.chunk_count,
            samples_received: ack.samples_received,
            samples_durable: ack.samples_durable,
            bytes_accepted: ack.bytes_accepted,
            chunk_id: ack.chunk_id.clone(),
        }
    }

    /// The message as JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a drain stands: the body of both `/admin/drain` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DrainStatus {
    /// `"draining"` once a drain has started, else `"ready"`.
    pub status: String,
    /// Sessions still admitted or live, connected or in their resume window.
    pub streams: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_end_is_a_client_message() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"end"}"#),
            Ok(ClientMessage::End)
        );
        assert!(ClientMessage::parse(r#"{"type":"stop"}"#).is_err());
        assert_eq!(
            ClientMessage::parse(r#"{"type":"control","action":"close_session"}"#),
            Ok(ClientMessage::Control {
                action: ControlAction::CloseSession
            })
        );
        assert!(ClientMessage::parse(r#"{"type":"control","action":"reboot"}"#).is_err());
        assert!(ClientMessage::parse("end").is_err());
    }
}
