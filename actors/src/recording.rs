//! A session's FLAC file on disk: written as frames are encoded, synced so a
//! crash loses at most the frames of the batch being written, and always a
//! valid FLAC stream (STREAMINFO says "total unknown" until finalized).
//!
//! [`recover`] repairs a file left by a crash: it walks the frames from the
//! start with claxon's frame reader (an independent decoder that checks each
//! header's CRC-8 and each frame's CRC-16), keeps every frame that decodes in
//! sequence with the stream's format, cuts everything after the last one (a
//! torn write, zeros left by a power loss), and writes the final STREAMINFO
//! with the totals and MD5 of what was kept. It reads the file as a stream.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flacstream_codec::flac::{StreamInfo, STREAMINFO_BYTES, STREAMINFO_OFFSET};
use md5::{Digest, Md5};

/// Bytes before the first frame: `fLaC`, one metadata block header, STREAMINFO.
pub const HEADER_BYTES: u64 = (STREAMINFO_OFFSET + STREAMINFO_BYTES) as u64;

/// An open recording being appended to.
#[derive(Debug)]
pub struct RecordingFile {
    file: File,
    path: PathBuf,
    len: u64,
    /// Set by finalize or repair: later appends are refused, so a write that
    /// was queued behind them cannot land after the final STREAMINFO.
    sealed: bool,
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
            sealed: false,
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
            sealed: false,
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

    /// Refuses further appends (the file is being repaired or finalized).
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// Whether nothing but the header is there.
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_BYTES
    }

    /// Appends whole frames and syncs their data before returning.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<u64> {
        if self.sealed {
            return Err(io::Error::other("the recording is already finalized"));
        }
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.write_all(frames)?;
        self.file.sync_data()?;
        self.len += frames.len() as u64;
        Ok(self.len)
    }

    /// Writes the final STREAMINFO over the provisional one, synced.
    pub fn finalize(&mut self, streaminfo: &[u8; STREAMINFO_BYTES]) -> io::Result<()> {
        self.sealed = true;
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
    let mut reader = Positioned::new(File::open(path)?);
    let mut header = [0u8; HEADER_BYTES as usize];
    reader
        .inner
        .read_exact(&mut header)
        .map_err(|_| RecoverError::NotARecording)?;
    reader.pos = HEADER_BYTES;
    if &header[..4] != b"fLaC" {
        return Err(RecoverError::NotARecording);
    }
    let mut body = [0u8; STREAMINFO_BYTES];
    body.copy_from_slice(&header[STREAMINFO_OFFSET..]);
    let provisional = StreamInfo::parse(&body).ok_or(RecoverError::NotARecording)?;
    let format = provisional.format;
    let width = format.layout.bytes_per_sample;

    let mut md5 = Md5::new();
    let mut samples = 0u64;
    let mut frames = 0u64;
    let (mut min, mut max) = (0u32, 0u32);
    let mut end = HEADER_BYTES;
    let mut pcm = Vec::new();
    let mut buffer = Vec::new();
    // Stops at the end of the file, or at the first frame that does not
    // decode: a torn write or whatever a crash left after the last whole frame.
    while let Ok(Some(block)) =
        claxon::frame::FrameReader::new(&mut reader).read_next_or_eof(buffer)
    {
        // A frame that decodes but does not continue this stream (wrong
        // position or channel count) is not ours either.
        if block.time() != samples || block.channels() as usize != format.layout.channels {
            break;
        }
        pcm.clear();
        for i in 0..block.duration() {
            for ch in 0..block.channels() {
                pcm.extend_from_slice(&block.sample(ch, i).to_le_bytes()[..width]);
            }
        }
        md5.update(&pcm);
        samples += u64::from(block.duration());
        buffer = block.into_buffer();
        let len = (reader.pos - end) as u32;
        min = if frames == 0 { len } else { min.min(len) };
        max = max.max(len);
        frames += 1;
        end = reader.pos;
    }
    let file_len = std::fs::metadata(path)?.len();
    let info = StreamInfo {
        format,
        min_frame_bytes: min,
        max_frame_bytes: max,
        total_samples: samples,
        md5: md5.finalize().into(),
    };
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.set_len(end)?;
    if finalize {
        file.seek(SeekFrom::Start(STREAMINFO_OFFSET as u64))?;
        file.write_all(&info.to_bytes())?;
    }
    file.sync_all()?;
    Ok(Recovered {
        info,
        frames,
        truncated_bytes: file_len - end,
        len: end,
    })
}

/// A buffered file reader that knows how many bytes it has handed out, so a
/// frame's end offset is known after claxon reads it.
struct Positioned {
    inner: BufReader<File>,
    pos: u64,
}

impl Positioned {
    fn new(file: File) -> Self {
        Self {
            inner: BufReader::new(file),
            pos: 0,
        }
    }
}

impl claxon::input::ReadBytes for Positioned {
    fn read_u8(&mut self) -> io::Result<u8> {
        self.read_u8_or_eof()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected eof"))
    }

    fn read_u8_or_eof(&mut self) -> io::Result<Option<u8>> {
        let byte = match self.inner.fill_buf()?.first() {
            Some(&b) => b,
            None => return Ok(None),
        };
        self.inner.consume(1);
        self.pos += 1;
        Ok(Some(byte))
    }

    fn read_into(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buffer)?;
        self.pos += buffer.len() as u64;
        Ok(())
    }

    fn skip(&mut self, amount: u32) -> io::Result<()> {
        let skipped = io::copy(
            &mut (&mut self.inner).take(u64::from(amount)),
            &mut io::sink(),
        )?;
        self.pos += skipped;
        if skipped < u64::from(amount) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected eof",
            ));
        }
        Ok(())
    }
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
    fn any_tail_a_crash_can_leave_is_cut_and_every_whole_frame_kept() {
        let tails: [(&str, Vec<u8>); 4] = [
            ("one sync byte", vec![0xFF]),
            ("a sync code", vec![0xFF, 0xF8]),
            ("zeros from a power loss", vec![0; 4096]),
            (
                "random bytes",
                (0..999u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
        ];
        for (name, tail) in tails {
            let path = temp_path("tail.flac");
            let (samples, _) = write(&path, 5);
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&tail).unwrap();
            drop(f);
            let rec = recover(&path, true).unwrap();
            assert_eq!(rec.frames, 5, "{name}");
            assert_eq!(rec.truncated_bytes as usize, tail.len(), "{name}");
            assert_eq!(decode(&path).0, samples, "{name}");
        }
    }

    #[test]
    fn a_header_only_file_recovers_to_zero_samples() {
        let path = temp_path("empty.flac");
        let (_, _) = write(&path, 0);
        let rec = recover(&path, true).unwrap();
        assert_eq!((rec.frames, rec.info.total_samples), (0, 0));
        assert_eq!(rec.len, HEADER_BYTES);
    }

    #[test]
    fn a_sealed_recording_refuses_appends() {
        let path = temp_path("sealed.flac");
        let _ = write(&path, 1);
        let mut file = RecordingFile::reopen(&path).unwrap();
        file.seal();
        assert!(file.append(&[0xFF, 0xF8]).is_err());
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
