//! Optional in-process TLS, so that `wss://` and `https://` work without a
//! proxy in front. Plain HTTP stays the default: behind an ingress that
//! terminates TLS, this module is not used at all.
//!
//! [`Certificates`] loads a PEM certificate chain and private key
//! ([`TlsFiles`]) and is the server's certificate resolver: each handshake
//! asks it for the current certificate, so a reload takes effect for the
//! next connection while the open ones go on with the certificate they
//! started with. [`Certificates::watch`] reloads on SIGHUP and whenever one
//! of the two files changes (polled every [`TLS_RELOAD_POLL_SECONDS`]). A
//! reload that fails (unreadable file, bad PEM, a key that does not fit the
//! certificate) keeps the certificate being served and logs an error.
//!
//! The protocol offered by ALPN is `http/1.1` only: actix-web adds it to the
//! configuration itself, and this build has no HTTP/2.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::signal::unix::{signal, SignalKind};

/// Time between two looks at the certificate and key files, in seconds. A
/// look is two `stat` calls, so it costs nothing; a renewed certificate
/// (cert-manager rewriting a mounted Secret, say) is served within this time
/// of being written, without a SIGHUP.
pub const TLS_RELOAD_POLL_SECONDS: u64 = 2;

/// Where the certificate chain and its private key are, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: end-entity certificate first, then any
    /// intermediates.
    pub cert: PathBuf,
    /// The private key of the end-entity certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key cannot be served. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("{} holds no usable PEM certificate ({reason})", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds no PEM private key, or one the crypto provider
    /// cannot use.
    #[error("{} holds no usable PEM private key ({reason})", path.display())]
    NoKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's key, or the certificate is not X.509.
    #[error("the key in {} does not fit the certificate in {} ({reason})", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Modification time, length and inode of one file, as last looked at;
/// `None` if it could not be looked at. The inode catches a file replaced by
/// a rename (or a Kubernetes Secret's symlink swap) that kept time and size.
type Stamp = Option<(SystemTime, u64, u64)>;

/// The certificate being served, swappable while the server runs; the
/// server's certificate resolver.
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps at the last load or attempt, so that a change is
    /// picked up once (and a bad file is reported once, not every poll).
    seen: Mutex<[Stamp; 2]>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads the files; at start-up an error here is fatal.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = stamps(files);
        let key = load(files, &provider)?;
        log::info!("TLS certificate loaded from {}.", files.cert.display());
        Ok(Arc::new(Self {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// The certificate chain and key new connections get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read())
    }

    /// Reads the files again now and serves them to new connections. On an
    /// error the previous certificate stays and the error is logged and
    /// returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        // Looked at before reading: a change made while reading is seen
        // again at the next poll rather than missed.
        *self.seen.lock() = stamps(&self.files);
        match load(&self.files, &self.provider) {
            Ok(key) => {
                *self.current.write() = Arc::new(key);
                log::info!(
                    "TLS certificate reloaded from {}.",
                    self.files.cert.display()
                );
                Ok(())
            }
            Err(e) => {
                log::error!("TLS certificate not reloaded, the previous one stays: {e}.");
                Err(e)
            }
        }
    }

    /// Reloads if either file has changed since it was last read; true if
    /// a reload was tried.
    pub fn reload_if_changed(&self) -> bool {
        if stamps(&self.files) == *self.seen.lock() {
            return false;
        }
        // The error is logged; the old certificate stays.
        let _ = self.reload();
        true
    }

    /// The rustls server configuration: TLS 1.2 and 1.3 with ring's
    /// defaults, no client certificates, certificates from `self`.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, rustls::Error> {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(self) as _;
        Ok(
            ServerConfig::builder_with_provider(Arc::clone(&self.provider))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(resolver),
        )
    }

    /// Reloads on SIGHUP and when the files change; runs until its task is
    /// dropped (the server's runtime ends).
    pub async fn watch(self: Arc<Self>) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("Cannot listen for SIGHUP ({e}); the TLS certificate reloads only when its files change.");
                None
            }
        };
        let mut poll = tokio::time::interval(Duration::from_secs(TLS_RELOAD_POLL_SECONDS));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(()) = hup => {
                    log::info!("SIGHUP: reloading the TLS certificate.");
                    let _ = self.reload();
                }
                _ = poll.tick() => {
                    self.reload_if_changed();
                }
            }
        }
    }
}

/// Without TLS there is nothing to reload, but SIGHUP still must not end
/// the process, as it does by default: a `kill -HUP` meant as "reload"
/// (by an operator, or a tool that sends it to every service) would take a
/// plain-HTTP server down. The handler is installed before this returns, so
/// a SIGHUP that comes before the future first runs is caught too; the
/// future logs each one.
pub fn log_hangups() -> impl std::future::Future<Output = ()> {
    let hangup = signal(SignalKind::hangup());
    async move {
        match hangup {
            Ok(mut hangup) => {
                while hangup.recv().await.is_some() {
                    log::info!("SIGHUP: nothing to reload (no TLS).");
                }
            }
            Err(e) => log::warn!("Cannot listen for SIGHUP ({e}); a SIGHUP will end the process."),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

fn stamps(files: &TlsFiles) -> [Stamp; 2] {
    [stamp(&files.cert), stamp(&files.key)]
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks the chain and key: at least one certificate, a key the
/// provider can sign with, and that key being the certificate's.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let no_cert = |reason: String| TlsError::NoCertificate {
        path: files.cert.clone(),
        reason,
    };
    let no_key = |reason: String| TlsError::NoKey {
        path: files.key.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(no_cert("no CERTIFICATE section".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| no_key(e.to_string()))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| no_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // ring reports every key's public half, so "unknown" does not occur;
        // it would mean the fit cannot be checked, not that it is wrong.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(e) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (String, String) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, k) = (cert.pem(), signing_key.serialize_pem());
        std::fs::write(dir.join("cert.pem"), &c).unwrap();
        std::fs::write(dir.join("key.pem"), &k).unwrap();
        (c, k)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flacstream-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    #[test]
    fn errors_name_the_file_and_a_bad_reload_keeps_the_old_certificate() {
        let dir = temp_dir("errors");
        let files = files(&dir);
        let missing = Certificates::load(&files).unwrap_err().to_string();
        assert!(missing.contains("cert.pem"), "{missing}");

        let (first_cert, _) = write_pair(&dir, "a.test");
        let certs = Certificates::load(&files).unwrap();
        let first = certs.current().cert[0].clone();

        // A key that is not the certificate's.
        let (_, other_key) = {
            let other = temp_dir("errors-other");
            write_pair(&other, "b.test")
        };
        std::fs::write(&files.key, other_key).unwrap();
        let e = certs.reload().unwrap_err().to_string();
        assert!(
            e.contains("key.pem") && e.contains("cert.pem") && e.contains("does not fit"),
            "{e}"
        );
        assert_eq!(certs.current().cert[0], first);

        std::fs::write(&files.cert, "not PEM at all").unwrap();
        let e = certs.reload().unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no usable PEM certificate"),
            "{e}"
        );
        std::fs::write(&files.cert, &first_cert).unwrap();
        std::fs::write(
            &files.key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = certs.reload().unwrap_err().to_string();
        assert!(e.contains("key.pem") && e.contains("private key"), "{e}");
        assert_eq!(certs.current().cert[0], first);

        // Both or neither file changes are picked up once.
        write_pair(&dir, "c.test");
        assert!(certs.reload_if_changed());
        assert_ne!(certs.current().cert[0], first);
        assert!(!certs.reload_if_changed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
