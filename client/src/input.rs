//! A WAV file read into memory, and what its header says.

use std::path::Path;

use flacstream_codec::wav::{WavError, WavEvent, WavFormat, WavParser};

use tokio::io::AsyncReadExt;

use crate::error::ClientError;
use crate::stdio::is_stdio;

/// What the client needs from a WAV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The declared format (checked the way the server checks it).
    pub format: WavFormat,
    /// Offset of the first audio byte (just past the `data` chunk header).
    pub data_offset: usize,
}

impl Header {
    /// Bytes of audio per second: sample rate × block align, which is what a
    /// PCM header's byte-rate field must hold.
    pub fn byte_rate(&self) -> u64 {
        u64::from(self.format.sample_rate) * self.format.block_align() as u64
    }

    /// Where the audio ends in a file of `len` bytes: the declared `data`
    /// length, or the end of the file for a streaming header.
    pub fn data_end(&self, len: usize) -> usize {
        match self.format.data_len {
            Some(n) => self.data_offset.saturating_add(n as usize).min(len),
            None => len,
        }
    }
}

/// A WAV file to stream.
#[derive(Debug)]
pub struct Input {
    /// Every byte of the file, sent as is.
    pub bytes: Vec<u8>,
    /// The header, or why this client could not read it. The server has the
    /// last word: an unreadable header is still sent, so its error comes
    /// back with the server's code.
    pub header: Result<Header, WavError>,
}

impl Input {
    /// Reads `path` (`-`: all of stdin) and parses its header (off the
    /// async threads).
    pub async fn read(path: &Path) -> Result<Self, ClientError> {
        if is_stdio(path) {
            let mut bytes = Vec::new();
            tokio::io::stdin()
                .read_to_end(&mut bytes)
                .await
                .map_err(ClientError::Read)?;
            let header = parse_header(&bytes);
            return Ok(Self { bytes, header });
        }
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(ClientError::Read)?;
            let header = parse_header(&bytes);
            Ok(Self { bytes, header })
        })
        .await
        .map_err(|e| ClientError::Read(std::io::Error::other(e)))?
    }
}

/// Parses the header at the front of `bytes`, up to the first audio byte.
pub fn parse_header(bytes: &[u8]) -> Result<Header, WavError> {
    // No header-size cap here: the server enforces its own.
    let mut parser = WavParser::new(u64::MAX);
    let mut rest = bytes;
    while let Some(event) = parser.next(&mut rest)? {
        if let WavEvent::Format(format) = event {
            return Ok(Header {
                format,
                data_offset: bytes.len() - rest.len(),
            });
        }
    }
    Err(WavError::TruncatedHeader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flacstream_codec::fixture::{wav_bytes, DataSize, WavSpec};

    #[test]
    fn header_offsets_and_rates() {
        let mut spec = WavSpec::pcm(2, 44_100, 16);
        spec.chunks_before_data = vec![(*b"JUNK", vec![0; 5])];
        let wav = wav_bytes(&spec, &[0; 400]);
        let header = parse_header(&wav).unwrap();
        assert_eq!(header.data_offset, wav.len() - 400);
        assert_eq!(header.byte_rate(), 176_400);
        assert_eq!(header.data_end(wav.len()), wav.len());

        spec.data_size = DataSize::StreamingMax;
        let wav = wav_bytes(&spec, &[0; 400]);
        let header = parse_header(&wav).unwrap();
        assert_eq!(header.format.data_len, None);
        assert_eq!(header.data_end(wav.len()), wav.len());
    }

    #[test]
    fn bad_headers_are_reported() {
        assert_eq!(parse_header(b"RIFF"), Err(WavError::TruncatedHeader));
        assert_eq!(parse_header(b"hello world!"), Err(WavError::NotRiff));
    }
}
