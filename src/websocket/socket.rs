//! The client's TCP socket, kept beside each connection so that a client
//! that stops reading can be cut off for real.
//!
//! actix-web gives a streaming response no write deadline: when a client
//! never reads, its receive window closes, the response stops draining, and
//! the connection lives as long as the client keeps it open — while the
//! server goes on reading (and discarding) whatever the client sends. Ending
//! the response does not help, because the dispatcher first waits to flush
//! what is already queued. Shutting the socket down does: the dispatcher's
//! next read sees end of input and its next write fails, and it drops the
//! connection.
//!
//! That cut-off is the WebSocket and `/convert` transports' own. Every other
//! response (a recording download, `/app.js`, anything larger than the
//! socket buffers) has the kernel's instead: [`attach`] sets
//! `TCP_USER_TIMEOUT` on each accepted socket to the outbound stall time
//! plus [`KERNEL_CUT_OFF_MARGIN_SECONDS`], and on Linux (5.1 and later, and
//! checked on this one by `tests/it/limits/slow_client.rs`) that also aborts a connection
//! whose client has kept its receive window shut that long, not only one
//! whose data goes unacknowledged. It changes nothing for a connection that
//! has no data waiting to go out (an idle or uploading client), and
//! keep-alive is off, so nothing legitimate is shortened but a client whose
//! network loses everything for that long.
//!
//! [`attach`] runs once per accepted connection (`HttpServer::on_connect`)
//! and stores a duplicate of the socket's descriptor in the connection's
//! data. A duplicate, not the raw number: it stays valid while any request
//! holds it, so a shutdown can never reach a descriptor number that the
//! kernel has meanwhile given to another connection.

use std::any::Any;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::HttpRequest;
use socket2::{SockRef, Socket};

/// Time the kernel's cut-off (`TCP_USER_TIMEOUT`) waits beyond the outbound
/// stall time, in seconds: at least the WebSocket transport's own close
/// after a stall (2 s for the final message, 2 s of linger), and a second
/// more, so that a WebSocket client that stops reading is normally closed
/// with `slow_reader` by the transport first. The kernel's clock starts when
/// the socket's buffers fill, the transport's only once its queue has too.
pub const KERNEL_CUT_OFF_MARGIN_SECONDS: u64 = 5;

/// A connection's socket, shared by the requests and tasks that serve it.
#[derive(Clone, Debug)]
pub struct PeerSocket(Arc<Socket>);

impl PeerSocket {
    /// The socket of the connection `req` arrived on, if [`attach`] stored one.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.conn_data::<PeerSocket>().cloned()
    }

    /// Stops taking the client's input: reads see its end, so nothing more
    /// is read (and discarded) from a client whose stream is over.
    pub fn stop_input(&self) {
        if let Err(e) = self.0.shutdown(Shutdown::Read) {
            log::debug!("Socket shutdown (read): {e}.");
        }
    }

    /// Ends the connection both ways, whatever is still queued on it.
    pub fn cut(&self) {
        if let Err(e) = self.0.shutdown(Shutdown::Both) {
            // Already shut down or reset by the peer: the connection is over.
            log::debug!("Socket shutdown: {e}.");
        }
    }
}

/// `HttpServer::on_connect` hook: sets the kernel's cut-off, `cut_off`
/// (see the module docs), and stores the accepted TCP socket's duplicate.
/// Over TLS the connection is the TLS stream, and the socket is the TCP
/// stream under it: shutting that down ends the TLS connection just the same.
pub fn attach(connection: &dyn Any, data: &mut Extensions, cut_off: Duration) {
    let stream = if let Some(tcp) = connection.downcast_ref::<TcpStream>() {
        tcp
    } else if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
        tls.get_ref().0
    } else {
        log::warn!(
            "Unknown connection type; slow readers are cut off only by their own disconnect."
        );
        return;
    };
    let socket = SockRef::from(stream);
    if let Err(e) = socket.set_tcp_user_timeout(Some(cut_off)) {
        log::warn!("Cannot set TCP_USER_TIMEOUT ({e}); a download that is never read stays open.");
    }
    match socket.try_clone() {
        Ok(socket) => {
            data.insert(PeerSocket(Arc::new(socket)));
        }
        Err(e) => log::warn!("Cannot keep the client's socket ({e}); slow readers are cut off only by their own disconnect."),
    }
}
