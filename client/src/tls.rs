//! The TLS configuration for `wss://` and `https://`: rustls on ring (as the
//! service uses; aws-lc-rs, rustls's default, needs cmake to build),
//! trusting the system's root certificates, plus a private CA from
//! `--ca-file` when one is given.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::ClientError;

/// Builds the client's TLS configuration. The system's roots are loaded
/// when there are any (a container without them still works with
/// `--ca-file`); a CA file that cannot be read or holds no certificate is an
/// error, so a typo never silently falls back to the system's roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    // Errors here are unreadable files in the system's certificate
    // directories; the ones that did load are still good.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| ca_error(path, e.to_string()))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Usage(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates in a PEM file (a CA, or a self-signed server certificate).
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = std::fs::read(path).map_err(|e| ca_error(path, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error(path, "no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn ca_error(path: &Path, why: String) -> ClientError {
    ClientError::Usage(format!("--ca-file {}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir =
            std::env::temp_dir().join(format!("flacstream-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let missing = dir.join("missing.pem");
        assert!(client_config(Some(&missing)).is_err());
        assert!(client_config(None).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
