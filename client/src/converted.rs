//! What converting one file achieved: written by `convert`, reported by
//! `progress` and returned by [`crate::convert_all`].
//!
//! A leaf module because `convert` reports through `progress`, which reports
//! this: kept in `convert`, it made `progress` and `convert` depend on each
//! other.

use std::path::PathBuf;

/// A converted, verified file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The FLAC written.
    pub output: PathBuf,
    /// Samples per channel it holds.
    pub samples: u64,
    /// WAV bytes sent.
    pub bytes_in: u64,
    /// FLAC bytes written.
    pub bytes_out: u64,
}
