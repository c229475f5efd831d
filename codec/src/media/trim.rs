//! Gapless trimming: encoder delay off the front, padding off the end.
//!
//! symphonia trims what its demuxer and decoder know (MP3's LAME/Xing tag,
//! Ogg granule positions, FLAC, WAV). Its MP4 reader does not apply the
//! edit list, so AAC in M4A would start with the encoder's priming samples
//! (1024 or 2112) and end with padding; [`Trim::from_mp4`] takes the edit
//! list ([`Mp4Timing`]) and the decoder applies it here.

use super::mp4_timing::Mp4Timing;

/// Frames to drop from the front, then frames to keep (the rest is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trim {
    /// Frames still to drop.
    skip: u64,
    /// Frames still to keep; `None`: all.
    keep: Option<u64>,
}

impl Trim {
    /// No trimming.
    pub fn none() -> Self {
        Self::default()
    }

    /// The trim an MP4's timing declares, at the decoded `sample_rate`.
    /// The first edit (after an empty one) starts at `media_time`; the
    /// track's media duration (mdhd, in the track's own timescale, so
    /// exact) ends it. The edit's own duration is in the movie's coarser
    /// timescale (ffmpeg writes milliseconds), so it only shortens the
    /// track when it is shorter by more than one of its ticks.
    pub fn from_mp4(timing: Mp4Timing, sample_rate: u32) -> Self {
        if timing.timescale == 0 || sample_rate == 0 {
            return Self::none();
        }
        let rate = u128::from(sample_rate);
        let to_frames = |t: u64| (u128::from(t) * rate / u128::from(timing.timescale)) as u64;
        // A fragmented MP4 (browsers' MediaRecorder, ffmpeg's
        // `frag_keyframe+empty_moov`) declares a media duration of 0 (or
        // all ones): unknown, so only the start is trimmed. Found by
        // review: treating it as "keep nothing" stored zero samples.
        let known = timing.duration > timing.media_time
            && timing.duration != u64::from(u32::MAX)
            && timing.duration != u64::MAX;
        let mut keep = known.then(|| to_frames(timing.duration - timing.media_time));
        if let Some((edited, movie)) = timing.edited.filter(|(e, m)| *m > 0 && *e > 0) {
            let per_tick = rate.div_ceil(u128::from(movie)) as u64;
            let edited = (u128::from(edited) * rate).div_ceil(u128::from(movie)) as u64;
            keep = match keep {
                Some(k) if edited.saturating_add(per_tick) < k => Some(edited),
                Some(k) => Some(k),
                // No media duration: the edit's, rounded up to its tick.
                None => Some(edited),
            };
        }
        Self {
            skip: to_frames(timing.media_time),
            keep,
        }
    }

    /// Whether anything is left to keep.
    pub fn exhausted(&self) -> bool {
        self.keep == Some(0)
    }

    /// Appends the part of `pcm` (whole frames of `align` bytes) that the
    /// trim keeps to `out`.
    pub fn apply(&mut self, pcm: &[u8], align: usize, out: &mut Vec<u8>) {
        let frames = (pcm.len() / align) as u64;
        let skipped = self.skip.min(frames);
        self.skip -= skipped;
        let mut take = frames - skipped;
        if let Some(keep) = self.keep.as_mut() {
            take = take.min(*keep);
            *keep -= take;
        }
        let from = skipped as usize * align;
        out.extend_from_slice(&pcm[from..from + take as usize * align]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_then_keeps_across_calls() {
        let mut trim = Trim {
            skip: 3,
            keep: Some(4),
        };
        let mut out = Vec::new();
        trim.apply(&[0, 1], 1, &mut out);
        trim.apply(&[2, 3, 4, 5], 1, &mut out);
        trim.apply(&[6, 7, 8], 1, &mut out);
        assert_eq!(out, [3, 4, 5, 6]);
        assert!(trim.exhausted());
        let mut none = Trim::none();
        none.apply(&[1, 2, 3, 4], 2, &mut out);
        assert_eq!(out, [3, 4, 5, 6, 1, 2, 3, 4]);
    }

    #[test]
    fn garbage_has_no_timing() {
        let mut garbage = std::io::Cursor::new(b"not an mp4 at all".to_vec());
        assert_eq!(Mp4Timing::read(&mut garbage), None);
    }

    #[test]
    fn ffmpegs_aac_timing_keeps_exactly_the_source() {
        // ffmpeg's AAC of 100000 frames: priming 1024, mdhd 101024 ticks
        // at 44.1 kHz, the edit 2267 ms (rounded down).
        let timing = Mp4Timing {
            timescale: 44_100,
            duration: 101_024,
            media_time: 1024,
            edited: Some((2267, 1000)),
        };
        assert_eq!(
            Trim::from_mp4(timing, 44_100),
            Trim {
                skip: 1024,
                keep: Some(100_000)
            }
        );
        // An edit that really is shorter wins.
        let short = Mp4Timing {
            edited: Some((1000, 1000)),
            ..timing
        };
        assert_eq!(Trim::from_mp4(short, 44_100).keep, Some(44_100));
        // Fragmented: no media duration, no edit: only the priming goes.
        let fragmented = Mp4Timing {
            duration: 0,
            edited: None,
            ..timing
        };
        assert_eq!(
            Trim::from_mp4(fragmented, 44_100),
            Trim {
                skip: 1024,
                keep: None
            }
        );
    }
}
