//! The byte stream under a WebSocket: TCP, or TLS over TCP for `wss://`.
//!
//! The client makes the TLS connection itself (tokio-rustls, with the
//! configuration of [`crate::tls`]) rather than through tokio-tungstenite's
//! TLS features: those would also switch TLS on in the service's own
//! WebSocket client (its scaled-mode relay) whenever both are built
//! together, with rustls's process-wide default provider, which is
//! ambiguous there (ring and aws-lc-rs are both in that build).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A connection to the server.
#[derive(Debug)]
pub enum Transport {
    /// `ws://`, `http://`.
    Plain(TcpStream),
    /// `wss://`, `https://`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum TransportError {
    /// The TCP connection failed (refused, unreachable, reset): worth retrying.
    Connect(io::Error),
    /// The TLS handshake failed; a certificate that does not verify is
    /// `InvalidData`, which no retry will change.
    Tls(io::Error),
    /// The host is no name or address a certificate can be checked against.
    BadName(String),
}

impl Transport {
    /// Connects to `host:port`, with TLS when `tls` is given.
    pub async fn connect(
        host: &str,
        port: u16,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Self, TransportError> {
        // An IPv6 literal comes bracketed from a URL.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(TransportError::Connect)?;
        // Small control messages (acks, close_session) go out at once.
        let _ = tcp.set_nodelay(true);
        let Some(config) = tls else {
            return Ok(Self::Plain(tcp));
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| TransportError::BadName(host.to_string()))?;
        let stream = TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map_err(TransportError::Tls)?;
        Ok(Self::Tls(Box::new(stream)))
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
