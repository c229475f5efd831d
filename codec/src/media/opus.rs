//! Opus, which symphonia demuxes (Ogg, WebM/MKV) but does not decode:
//! packets go to `opus-pure` (pure Rust; see the workspace manifest for why
//! and how it was measured) at 48 kHz, Opus's own output rate.
//!
//! Gapless: the header's pre-skip is dropped from the start here (symphonia
//! does not mark it); in Ogg the end is trimmed as symphonia's demuxer
//! marks it from the last granule position, while in Matroska the end
//! keeps the encoder's padding (WebM's `DiscardPadding` is not read).

use opus_pure::{OpusDecoder, OpusMSDecoder, MAX_PACKET_SAMPLES};
use symphonia::core::packet::Packet;

use super::MediaError;

/// Opus decodes to 48 kHz, whatever the source was.
pub const OPUS_RATE: u32 = 48_000;

/// For each FLAC channel (FLAC's and WAV's order: FL FR FC LFE BL BR SL
/// SR), the Opus channel it comes from: Opus family 1 uses the Vorbis
/// order (RFC 7845 §5.1.1.2), which puts the centre second and the LFE
/// last. Indexed by channel count; 1, 2 and 4 channels need no change.
const VORBIS_TO_FLAC: [&[usize]; 9] = [
    &[],
    &[0],
    &[0, 1],
    &[0, 2, 1],
    &[0, 1, 2, 3],
    &[0, 2, 1, 3, 4],
    &[0, 2, 1, 5, 3, 4],
    &[0, 2, 1, 6, 5, 3, 4],
    &[0, 2, 1, 7, 5, 6, 3, 4],
];

/// What `OpusHead` (RFC 7845 §5.1) says, as far as decoding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    channels: usize,
    pre_skip: u64,
    gain_q8: i16,
    family: u8,
}

impl Head {
    /// Parses an `OpusHead` packet (symphonia hands it over as the codec's
    /// extra data).
    fn parse(b: &[u8]) -> Result<Self, MediaError> {
        let bad = || MediaError::Corrupt("the Opus header (OpusHead) is malformed".into());
        if b.len() < 19 || &b[..8] != b"OpusHead" || b[8] >> 4 != 0 {
            return Err(bad());
        }
        let channels = usize::from(b[9]);
        let family = b[18];
        if channels == 0 {
            return Err(bad());
        }
        if family != 0 && family != 1 {
            return Err(MediaError::UnsupportedCodec(format!(
                "Opus with channel mapping family {family}"
            )));
        }
        if family == 0 && channels > 2 {
            return Err(bad());
        }
        if family == 1 {
            // opus-pure's multistream decoder assumes the standard Vorbis
            // layout for the channel count; a file that maps its streams
            // otherwise would come out with its channels wrong.
            let mapping = b.get(21..21 + channels).ok_or_else(bad)?;
            let standard = opus_pure::ChannelLayout::surround(channels, 1)
                .map_err(|_| MediaError::TooManyChannels(channels))?;
            if usize::from(b[19]) != standard.nb_streams
                || usize::from(b[20]) != standard.nb_coupled_streams
                || mapping != standard.mapping.as_slice()
            {
                return Err(MediaError::UnsupportedCodec(
                    "Opus with a non-standard channel mapping".into(),
                ));
            }
        }
        Ok(Self {
            channels,
            pre_skip: u64::from(u16::from_le_bytes([b[10], b[11]])),
            gain_q8: i16::from_le_bytes([b[16], b[17]]),
            family,
        })
    }
}

enum Inner {
    Single(Box<OpusDecoder>),
    Multi(Box<OpusMSDecoder>),
}

/// An Opus track being decoded.
pub struct OpusStream {
    inner: Inner,
    channels: usize,
    /// Frames of the pre-skip still to drop.
    skip: u64,
    /// The header's output gain as a factor (RFC 7845 says to apply it).
    gain: f64,
    pcm: Vec<f32>,
}

impl OpusStream {
    /// A decoder for the track whose `OpusHead` is `extra_data`.
    pub fn new(extra_data: Option<&[u8]>) -> Result<Self, MediaError> {
        let head = Head::parse(extra_data.unwrap_or_default())?;
        let failed = |e: opus_pure::Error| MediaError::Corrupt(format!("Opus: {e}"));
        let inner = if head.family == 0 {
            Inner::Single(Box::new(
                OpusDecoder::new(OPUS_RATE as i32, head.channels).map_err(failed)?,
            ))
        } else {
            Inner::Multi(Box::new(
                OpusMSDecoder::new(OPUS_RATE as i32, head.channels, head.family).map_err(failed)?,
            ))
        };
        Ok(Self {
            inner,
            channels: head.channels,
            skip: head.pre_skip,
            gain: 10f64.powf(f64::from(head.gain_q8) / (20.0 * 256.0)),
            pcm: vec![0.0; MAX_PACKET_SAMPLES * head.channels],
        })
    }

    /// Channels decoded.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes one packet into `out` (interleaved, full scale ±1.0, trimmed
    /// as the packet and the pre-skip say); the frames it added.
    pub fn decode(&mut self, packet: &Packet, out: &mut Vec<f64>) -> Result<usize, MediaError> {
        let decoded = match &mut self.inner {
            Inner::Single(d) => d.decode(&packet.data, MAX_PACKET_SAMPLES, &mut self.pcm),
            Inner::Multi(d) => d.decode(&packet.data, MAX_PACKET_SAMPLES, &mut self.pcm),
        }
        .map_err(|e| MediaError::Corrupt(format!("Opus: {e}")))?;
        // The pre-skip is dropped once, whether the demuxer marked it as
        // the first packets' trim (then it counts here) or not.
        let trim_start = usize::try_from(packet.trim_start.get()).unwrap_or(usize::MAX);
        self.skip = self.skip.saturating_sub(trim_start as u64);
        let trim_end = usize::try_from(packet.trim_end.get()).unwrap_or(usize::MAX);
        let end = decoded.saturating_sub(trim_end);
        let mut start = trim_start.min(end);
        let skipped = self.skip.min((end - start) as u64);
        self.skip -= skipped;
        start += skipped as usize;
        let ch = self.channels;
        let order = VORBIS_TO_FLAC.get(ch).copied().unwrap_or(&[]);
        for frame in self.pcm[start * ch..end * ch].chunks_exact(ch) {
            if order.len() == ch {
                out.extend(order.iter().map(|&i| f64::from(frame[i]) * self.gain));
            } else {
                out.extend(frame.iter().map(|s| f64::from(*s) * self.gain));
            }
        }
        Ok(end - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8) -> Vec<u8> {
        let mut b = b"OpusHead".to_vec();
        b.extend_from_slice(&[1, channels, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, family]);
        b
    }

    #[test]
    fn heads_are_read_and_checked() {
        let h = Head::parse(&head(2, 0)).unwrap();
        assert_eq!((h.channels, h.pre_skip, h.family), (2, 312, 0));
        assert!(Head::parse(&head(3, 0)).is_err());
        assert!(Head::parse(&head(0, 0)).is_err());
        assert!(Head::parse(&head(2, 255)).is_err());
        assert!(Head::parse(b"OpusHea").is_err());
        assert!(OpusStream::new(None).is_err());
    }
}
