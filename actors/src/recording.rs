//! A session's FLAC file on disk: written as frames are encoded, synced so a
//! crash loses at most the frames of the batch being written, and always a
//! valid FLAC stream (STREAMINFO says "total unknown" until finalized).
//!
//! [`recover`] repairs a file left by a crash: it keeps every whole frame
//! whose CRC-16 checks, cuts the torn tail, decodes what is left with claxon
//! (an independent decoder) to count samples and rebuild the MD5, and writes
//! the final STREAMINFO.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flacstream_codec::flac::{StreamInfo, STREAMINFO_BYTES, STREAMINFO_OFFSET};
use md5::{Digest, Md5};

/// Bytes before the first frame: `fLaC`, one metadata block header, STREAMINFO.
pub const HEADER_BYTES: u64 = (STREAMINFO_OFFSET + STREAMINFO_BYTES) as u64;

/// FLAC's frame CRC-16 (polynomial 0x8005, no reflection, init 0).
const FRAME_CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_UMTS);

/// Smallest possible frame: 4-byte header minimum + CRC-8 + one subframe byte
/// + CRC-16; a candidate end closer than this to the start is not checked.
const MIN_FRAME_BYTES: usize = 8;

/// An open recording being appended to.
#[derive(Debug)]
pub struct RecordingFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl RecordingFile {
    /// Creates `path` (which must not exist) holding `header`, synced.
    pub fn create(path: &Path, header: &[u8]) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(header)?;
        file.sync_all()?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: header.len() as u64,
        })
    }

    /// Reopens a recovered recording to append after its last frame.
    pub fn reopen(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written and synced.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing but the header is there.
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_BYTES
    }

    /// Appends whole frames and syncs their data before returning.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<u64> {
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.write_all(frames)?;
        self.file.sync_data()?;
        self.len += frames.len() as u64;
        Ok(self.len)
    }

    /// Writes the final STREAMINFO over the provisional one, synced.
    pub fn finalize(&mut self, streaminfo: &[u8; STREAMINFO_BYTES]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(STREAMINFO_OFFSET as u64))?;
        self.file.write_all(streaminfo)?;
        self.file.sync_all()
    }
}

/// What [`recover`] found and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The repaired STREAMINFO (totals and MD5 of the kept frames).
    pub info: StreamInfo,
    /// Whole frames kept.
    pub frames: u64,
    /// Bytes of a torn final frame that were cut.
    pub truncated_bytes: u64,
    /// The file's length after repair.
    pub len: u64,
}

/// Why a recording could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Reading or writing the file failed.
    #[error("recording file I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with this service's FLAC header.
    #[error("the recording does not start with a flacstream FLAC header")]
    NotARecording,
    /// The kept frames did not decode.
    #[error("the recording's frames do not decode: {0}")]
    Decode(String),
}

/// Repairs a recording after a crash; see the module docs. With `finalize`
/// the totals and MD5 are written into STREAMINFO; without, the provisional
/// header stays so appending can continue.
pub fn recover(path: &Path, finalize: bool) -> Result<Recovered, RecoverError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    if bytes.len() < HEADER_BYTES as usize || &bytes[..4] != b"fLaC" {
        return Err(RecoverError::NotARecording);
    }
    let mut body = [0u8; STREAMINFO_BYTES];
    body.copy_from_slice(&bytes[STREAMINFO_OFFSET..HEADER_BYTES as usize]);
    let provisional = StreamInfo::parse(&body).ok_or(RecoverError::NotARecording)?;

    let (end, frames, min_frame, max_frame) = scan_frames(&bytes);
    let kept = &bytes[..end];
    let (samples, md5) = decode_totals(kept, provisional.format.layout.bytes_per_sample)?;
    let info = StreamInfo {
        format: provisional.format,
        min_frame_bytes: min_frame,
        max_frame_bytes: max_frame,
        total_samples: samples,
        md5,
    };
    let truncated_bytes = (bytes.len() - end) as u64;
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.set_len(end as u64)?;
    if finalize {
        file.seek(SeekFrom::Start(STREAMINFO_OFFSET as u64))?;
        file.write_all(&info.to_bytes())?;
    }
    file.sync_all()?;
    Ok(Recovered {
        info,
        frames,
        truncated_bytes,
        len: end as u64,
    })
}

/// Finds the end of the last whole frame: each frame starts with the fixed
/// block-size sync code and ends where its CRC-16 matches and the next frame
/// (or the end of the file) begins. Returns (end, frames, min, max frame bytes).
fn scan_frames(bytes: &[u8]) -> (usize, u64, u32, u32) {
    let mut start = HEADER_BYTES as usize;
    let mut frames = 0;
    let (mut min, mut max) = (0u32, 0u32);
    while let Some(len) = frame_len(&bytes[start..]) {
        let len32 = len as u32;
        min = if frames == 0 { len32 } else { min.min(len32) };
        max = max.max(len32);
        frames += 1;
        start += len;
    }
    (start, frames, min, max)
}

/// Length of the frame at the start of `rest`, if a whole valid one is there.
fn frame_len(rest: &[u8]) -> Option<usize> {
    if rest.len() < MIN_FRAME_BYTES || rest[0] != 0xFF || rest[1] != 0xF8 {
        return None;
    }
    let mut digest = FRAME_CRC.digest();
    digest.update(&rest[..MIN_FRAME_BYTES - 2]);
    for end in MIN_FRAME_BYTES..=rest.len() {
        // `digest` covers rest[..end - 2]; the frame's CRC would be rest[end-2..end].
        let crc = digest.clone().finalize();
        let stored = u16::from_be_bytes([rest[end - 2], rest[end - 1]]);
        let next_is_frame = end == rest.len() || rest[end..].starts_with(&[0xFF, 0xF8]);
        if crc == stored && next_is_frame {
            return Some(end);
        }
        digest.update(&rest[end - 2..end - 1]);
    }
    None
}

/// Decodes a whole stream with claxon: (samples per channel, MD5).
fn decode_totals(flac: &[u8], bytes_per_sample: usize) -> Result<(u64, [u8; 16]), RecoverError> {
    let mut reader =
        claxon::FlacReader::new(flac).map_err(|e| RecoverError::Decode(e.to_string()))?;
    let channels = reader.streaminfo().channels as u64;
    let mut md5 = Md5::new();
    let mut count = 0u64;
    for sample in reader.samples() {
        let s = sample.map_err(|e| RecoverError::Decode(e.to_string()))?;
        md5.update(&s.to_le_bytes()[..bytes_per_sample]);
        count += 1;
    }
    Ok((count / channels, md5.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flacstream_codec::fixture::test_signal;
    use flacstream_codec::flac::{EncoderLevel, FrameEncoder, StreamFormat};
    use flacstream_codec::pcm::PcmLayout;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flacstream-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Writes `blocks` frames of a test signal; returns the samples written.
    fn write(path: &Path, blocks: usize) -> (Vec<i32>, Vec<Vec<u8>>) {
        let format = StreamFormat {
            sample_rate: 16_000,
            layout: PcmLayout {
                channels: 2,
                bytes_per_sample: 2,
            },
            block_size: 256,
        };
        let samples = test_signal(256 * blocks, 2, 16, 3);
        let mut file =
            RecordingFile::create(path, &StreamInfo::provisional(format).stream_header()).unwrap();
        let mut encoder = FrameEncoder::new();
        let mut frames = Vec::new();
        for (n, block) in samples.chunks(512).enumerate() {
            let frame = encoder
                .encode(&format, EncoderLevel::default(), n as u32, block)
                .unwrap();
            file.append(&frame.bytes).unwrap();
            frames.push(frame.bytes);
        }
        (samples, frames)
    }

    fn decode(path: &Path) -> (Vec<i32>, claxon::metadata::StreamInfo) {
        let mut r = claxon::FlacReader::open(path).unwrap();
        let info = r.streaminfo();
        (r.samples().map(|s| s.unwrap()).collect(), info)
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_finalized() {
        let path = temp_path("torn.flac");
        let (samples, frames) = write(&path, 6);
        // A crash in the middle of writing a seventh frame.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frames[0][..frames[0].len() / 2]).unwrap();
        drop(f);

        let rec = recover(&path, true).unwrap();
        assert_eq!(rec.frames, 6);
        assert_eq!(rec.truncated_bytes as usize, frames[0].len() / 2);
        assert_eq!(rec.info.total_samples, 256 * 6);
        let (decoded, info) = decode(&path);
        assert_eq!(decoded, samples);
        assert_eq!(info.samples, Some(256 * 6));
        let mut md5 = Md5::new();
        for s in &samples {
            md5.update(&s.to_le_bytes()[..2]);
        }
        assert_eq!(info.md5sum, <[u8; 16]>::from(md5.finalize()));
    }

    #[test]
    fn an_intact_file_keeps_every_frame_and_can_be_reopened() {
        let path = temp_path("intact.flac");
        let (samples, _) = write(&path, 3);
        let rec = recover(&path, false).unwrap();
        assert_eq!((rec.frames, rec.truncated_bytes), (3, 0));
        let reopened = RecordingFile::reopen(&path).unwrap();
        assert_eq!(reopened.len(), rec.len);
        assert_eq!(decode(&path).0, samples);
    }

    #[test]
    fn garbage_is_not_a_recording() {
        let path = temp_path("garbage.flac");
        std::fs::write(&path, b"not a flac file at all, just words").unwrap();
        assert!(matches!(
            recover(&path, true),
            Err(RecoverError::NotARecording)
        ));
    }
}
