//! Where recordings are kept: files in the data directory (the embedded
//! default), or object storage (`FLACSTREAM_STORAGE_URL`): S3 and anything
//! that speaks its protocol, a local directory through the same interface,
//! or memory for tests. One interface, the `object_store` crate, for all
//! of them ([`flacstream_actors::object_recordings`]).
//!
//! S3's endpoint and credentials come from the standard environment:
//! `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, and `AWS_ALLOW_HTTP=true` for a plain-http endpoint.

use std::sync::Arc;
use std::time::Duration;

use flacstream_actors::object_recordings::ObjectRecordings;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// Retries of one object-storage request (object_store's own retry, for
/// errors that are safe to retry), within the request timeout.
const STORAGE_RETRIES: usize = 3;

/// Why the storage URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Not a scheme this service speaks.
    #[error(
        "FLACSTREAM_STORAGE_URL must be s3://bucket/prefix, file:///dir or memory:///, got {0}"
    )]
    Scheme(String),
    /// The store could not be set up.
    #[error("cannot open object storage at {url}: {reason}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Opens the recordings store a storage URL names.
pub fn open(url: &str, timeout: Duration) -> Result<ObjectRecordings, StorageError> {
    let fail = |e: &dyn std::fmt::Display| StorageError::Open {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let (store, prefix): (Arc<dyn ObjectStore>, &str) =
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::Scheme(url.to_string()));
            }
            let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(allow_http)
                        .with_timeout(timeout)
                        .with_connect_timeout(timeout.min(Duration::from_secs(5))),
                )
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: STORAGE_RETRIES,
                    retry_timeout: timeout,
                })
                .build()
                .map_err(|e| fail(&e))?;
            (Arc::new(s3), prefix)
        } else if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
            let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| fail(&e))?;
            (Arc::new(local), "")
        } else if let Some(prefix) = url.strip_prefix("memory://") {
            (Arc::new(InMemory::new()), prefix)
        } else {
            return Err(StorageError::Scheme(url.to_string()));
        };
    let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| fail(&e))?;
    Ok(ObjectRecordings::new(store, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scheme_opens_and_others_are_refused() {
        let t = Duration::from_secs(5);
        assert!(open("memory:///", t).is_ok());
        let dir = std::env::temp_dir().join(format!("flacstream-storage-{}", std::process::id()));
        assert!(open(&format!("file://{}", dir.display()), t).is_ok());
        assert!(open("s3://bucket/some/prefix", t).is_ok());
        assert!(matches!(open("s3:///x", t), Err(StorageError::Scheme(_))));
        assert!(matches!(open("ftp://x/y", t), Err(StorageError::Scheme(_))));
    }
}
