//! The inbound WebSocket frame limit, enforced on each frame's header.
//!
//! actix-ws checks `max_frame_size` only once a whole frame has arrived: until
//! then its read buffer takes every byte the client sends. A client that
//! declares a 4 GiB frame (or 2^63 − 1 bytes) and keeps sending grows the
//! server by what it sends, and one that sends nothing more holds the
//! connection until the idle timeout without being told why (found by
//! loadtest/fault.sh: 600 MiB of RSS from one client in 2 s). [`FrameLimit`]
//! sits between the HTTP payload and actix-ws, reads each frame's header as
//! it passes, and fails the stream as soon as a header declares more than the
//! limit, so the read loop answers `message_too_large` (1009) at once and
//! nothing of the payload is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use bytes::Bytes;
use futures_util::Stream;

/// Longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask
/// key (RFC 6455 §5.2).
const MAX_HEADER_BYTES: usize = 14;

/// Wraps the request body of an upgraded connection in a [`FrameLimit`] of
/// `max_frame_bytes`.
pub fn limit(req: &HttpRequest, body: web::Payload, max_frame_bytes: usize) -> web::Payload {
    let limited: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(FrameLimit::new(body.into_inner(), max_frame_bytes));
    let mut payload = dev::Payload::from(limited);
    // `web::Payload` has no public constructor; its extractor takes any
    // `dev::Payload` and is infallible (`ready(Ok(Payload(payload.take())))`).
    match web::Payload::from_request(req, &mut payload).into_inner() {
        Ok(body) => body,
        Err(e) => unreachable!("the web::Payload extractor is infallible: {e}"),
    }
}

/// Whether a payload error is [`FrameLimit`]'s refusal of an oversize frame.
pub fn is_refusal(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Overflow)
}

/// Where the scan of the client's bytes stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a frame header; `len` of its bytes are in `header`.
    Header {
        header: [u8; MAX_HEADER_BYTES],
        len: usize,
    },
    /// Inside a payload with this many bytes still to come.
    Payload { remaining: u64 },
}

/// A client's byte stream, passed on unchanged until a frame header declares
/// a payload over the limit; then the bytes before that header, and then
/// [`PayloadError::Overflow`].
pub struct FrameLimit<S> {
    inner: S,
    max_frame_bytes: u64,
    state: State,
    /// The refusal, once the bytes before the oversize header are delivered.
    refused: bool,
}

impl<S> FrameLimit<S> {
    /// Limits the frames in `inner` to `max_frame_bytes` of payload each.
    pub fn new(inner: S, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            max_frame_bytes: max_frame_bytes as u64,
            state: State::Header {
                header: [0; MAX_HEADER_BYTES],
                len: 0,
            },
            refused: false,
        }
    }

    /// Scans `chunk`; `Some(n)` if the frame header ending at byte `n` of it
    /// declares too much (the bytes before that header's start may pass).
    fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < chunk.len() {
            match &mut self.state {
                State::Payload { remaining } => {
                    let skip = (*remaining).min((chunk.len() - at) as u64);
                    *remaining -= skip;
                    at += skip as usize;
                    if *remaining == 0 {
                        self.state = State::Header {
                            header: [0; MAX_HEADER_BYTES],
                            len: 0,
                        };
                    }
                }
                State::Header { header, len } => {
                    header[*len] = chunk[at];
                    *len += 1;
                    at += 1;
                    let Some((header_len, payload_len)) = declared(&header[..*len]) else {
                        continue;
                    };
                    if *len < header_len {
                        continue;
                    }
                    if payload_len > self.max_frame_bytes {
                        return Some(at.saturating_sub(header_len));
                    }
                    self.state = if payload_len == 0 {
                        State::Header {
                            header: [0; MAX_HEADER_BYTES],
                            len: 0,
                        }
                    } else {
                        State::Payload {
                            remaining: payload_len,
                        }
                    };
                }
            }
        }
        None
    }
}

/// (header length, declared payload length) once the header's first bytes
/// say them; `None` while too few bytes are in.
fn declared(header: &[u8]) -> Option<(usize, u64)> {
    let second = *header.get(1)?;
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let (extended, header_len) = match second & 0x7F {
        126 => (2, 4 + mask),
        127 => (8, 10 + mask),
        n => return Some((2 + mask, u64::from(n))),
    };
    let bytes = header.get(2..2 + extended)?;
    let payload_len = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Some((header_len, payload_len))
}

impl<S> Stream for FrameLimit<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.refused {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.scan(&chunk) {
                None => Poll::Ready(Some(Ok(chunk))),
                Some(0) => {
                    self.refused = true;
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
                Some(before) => {
                    self.refused = true;
                    Poll::Ready(Some(Ok(chunk.slice(..before))))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};

    /// A masked client frame header declaring `len` bytes.
    fn header(opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![0x80 | opcode];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len < 65536 {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = header(2, len as u64);
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    /// What the limit passes on when `bytes` arrive in pieces of `step`.
    async fn run(bytes: &[u8], step: usize, max: usize) -> (Vec<u8>, bool) {
        let chunks: Vec<Result<Bytes, PayloadError>> = bytes
            .chunks(step)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut limited = FrameLimit::new(stream::iter(chunks), max);
        let mut out = Vec::new();
        while let Some(item) = limited.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, is_refusal(&e)),
            }
        }
        (out, false)
    }

    #[actix_web::test]
    async fn frames_within_the_limit_pass_unchanged_however_split() {
        let mut bytes = Vec::new();
        for len in [0, 1, 125, 126, 1000, 65535, 65536, 70000] {
            bytes.extend(frame(len));
        }
        for step in [1, 2, 3, 7, 13, 14, 4096, bytes.len()] {
            assert_eq!(
                run(&bytes, step, 70000).await,
                (bytes.clone(), false),
                "step {step}"
            );
        }
    }

    #[actix_web::test]
    async fn a_header_over_the_limit_is_refused_before_its_payload() {
        let good = frame(100);
        for len in [70001, 1 << 32, (1 << 63) - 1, u64::MAX] {
            let mut bytes = good.clone();
            bytes.extend(header(2, len));
            bytes.extend([0u8; 16]);
            for step in [1, 5, 14, bytes.len()] {
                let (out, refused) = run(&bytes, step, 70000).await;
                assert!(refused, "{len} declared, step {step}: not refused");
                // The frame before it passes whole; nothing of the oversize
                // frame's payload does.
                assert!(out.len() >= good.len(), "{len}, step {step}");
                assert_eq!(&out[..good.len()], &good[..], "{len}, step {step}");
                assert!(out.len() < good.len() + 14, "{len}, step {step}");
            }
        }
    }

    #[actix_web::test]
    async fn an_oversize_control_frame_or_continuation_is_refused_too() {
        for opcode in [0, 1, 9] {
            let (_, refused) = run(&header(opcode, 2000), 3, 1000).await;
            assert!(refused, "opcode {opcode}");
        }
    }

    #[test]
    fn unmasked_headers_are_measured_without_a_mask_key() {
        assert_eq!(declared(&[0x82, 5]), Some((2, 5)));
        assert_eq!(declared(&[0x82, 126, 1]), None);
        assert_eq!(declared(&[0x82, 126, 1, 0]), Some((4, 256)));
        assert_eq!(
            declared(&[0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some((14, 1 << 32))
        );
    }
}
