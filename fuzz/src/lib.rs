//! What flacstream's libFuzzer targets check, as a library, so the checks can
//! also replay the committed corpus under `cargo test` on a stable toolchain
//! (`tests/corpus.rs`) and the seed generator (`examples/seeds.rs`) can write
//! inputs in the same layout the targets read.
//!
//! # Layout
//! - [`plan`]: the fixed-size prefix of every fuzz input: how the rest is split
//!   into messages and, for `ingest`, what the stream is.
//! - [`reference`]: an independent, whole-buffer reading of WAV/PCM bytes and
//!   FLAC's MD5, written apart from the codec crate to judge it.
//! - [`header`]: the `wav_header` check (parser fed any bytes in any pieces).
//! - [`ingest`]: the `ingest` check (bytes in pieces → PCM → FLAC → claxon →
//!   compared with the reference), over a driver that runs the service's own
//!   parser, decoder, staging ring and frame encoder the way a session does.
//! - [`segment`]: the `segment` check (a durable segment's header, as a
//!   replica that takes a session over reads it from object storage).
//! - [`media`]: the `media` check (any bytes through the decoder of uploads
//!   that are not WAV: symphonia, the MP4 edit list, the PCM conversion).
//! - [`alloc`]: a global allocator that records the largest single
//!   allocation, so a check can prove no declared size is allocated.

pub mod alloc;
pub mod header;
pub mod ingest;
pub mod media;
pub mod plan;
pub mod reference;
pub mod segment;
