//! The cap on long-lived connections per client address
//! (`--max-connections-per-ip`): WebSocket streams, recorded-session
//! producers and listeners, uploads to `/convert` and `/upload` from
//! their first byte to their last, and recording downloads until their
//! last byte is written ([`ClientSlot::hold`]).
//!
//! Without it one client could take every session slot (`--max-sessions`)
//! and every file descriptor by itself. A connection over the cap is
//! refused before the upgrade (or before the upload is read) with 429
//! `too_many_connections_from_client`. Each admitted connection holds a
//! [`ClientSlot`] that gives the place back when dropped, whichever way the
//! connection ends; an address's entry is removed when its count reaches
//! zero, so the map holds only addresses with live connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;
use actix_web::HttpResponse;

use parking_lot::Mutex;

use crate::error::ApiError;
use crate::limits::client_ip::ClientIp;

/// Default cap on concurrent long-lived connections from one client
/// address (inclusive). A browser tab uses one or two; a batch client
/// (`flacstream-client --jobs 4`) four; an office behind one NAT address
/// a few dozen. 64 is well above that and still only 1/16 of the default
/// `--max-sessions` (1024), so a single address cannot fill the server.
/// Behind a proxy that is not in `--trusted-proxies`, every client is the
/// proxy's address: trust the proxy or raise this.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts long-lived connections per client; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ClientConnections {
    max: usize,
    open: Counts,
}

impl ClientConnections {
    /// At most `max` connections per client address (inclusive).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// Counts a new connection from `client`, or refuses it with 429
    /// `too_many_connections_from_client` when that client has `max` open.
    pub fn enter(&self, client: ClientIp) -> Result<ClientSlot, ApiError> {
        let key = client.limit_key();
        let mut open = self.open.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return Err(ApiError::TooManyClientConnections(self.max));
        }
        *count += 1;
        Ok(ClientSlot {
            open: Arc::clone(&self.open),
            key,
            client,
        })
    }

    /// Connections open from `client` now.
    pub fn open_from(&self, client: ClientIp) -> usize {
        self.open
            .lock()
            .get(&client.limit_key())
            .copied()
            .unwrap_or(0)
    }

    /// Client addresses with a connection open now (the map's size).
    pub fn clients(&self) -> usize {
        self.open.lock().len()
    }
}

/// One counted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    open: Counts,
    key: IpAddr,
    client: ClientIp,
}

impl ClientSlot {
    /// The client this connection is counted for.
    pub fn client(&self) -> ClientIp {
        self.client
    }

    /// Holds this slot until `response`'s body is written (or the
    /// connection drops it): a download lasts as long as its client takes
    /// to read it, and counts like any other long-lived request.
    pub fn hold(self, response: HttpResponse) -> HttpResponse {
        response.map_body(|_, body| Held { body, _slot: self }.boxed())
    }
}

/// A response body with the client slot it holds.
struct Held {
    body: BoxBody,
    _slot: ClientSlot,
}

impl MessageBody for Held {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::client_ip::TrustedProxies;
    use actix_web::http::header::HeaderMap;

    fn ip(text: &str) -> ClientIp {
        ClientIp::resolve(
            text.parse().unwrap(),
            &HeaderMap::new(),
            &TrustedProxies::default(),
        )
    }

    #[test]
    fn the_cap_is_per_client_and_a_dropped_slot_frees_its_place() {
        let limit = ClientConnections::new(2);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = limit.enter(a).unwrap();
        let second = limit.enter(a).unwrap();
        let refused = limit.enter(a).unwrap_err();
        assert_eq!(refused.code(), "too_many_connections_from_client");
        // Another client is not affected.
        let other = limit.enter(b).unwrap();
        assert_eq!((limit.open_from(a), limit.open_from(b)), (2, 1));
        drop(first);
        let again = limit.enter(a).unwrap();
        assert_eq!(again.client(), a);
        drop((second, again, other));
        // Entries go at zero: the map holds live clients only.
        assert_eq!(limit.clients(), 0);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_the_cap() {
        let limit = ClientConnections::new(1);
        let _held = limit.enter(ip("2001:db8::1")).unwrap();
        assert!(limit.enter(ip("2001:db8::ffff:2")).is_err());
        assert!(limit.enter(ip("2001:db8:0:1::1")).is_ok());
    }
}
