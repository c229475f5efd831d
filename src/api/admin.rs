//! `POST /admin/drain` starts the same drain SIGTERM starts, and
//! `GET /admin/drain` reports how it stands. A Kubernetes `preStop` hook runs
//! `flacstream drain` (see [`crate::cli::probe`]), which calls both, so that the
//! kubelet's SIGTERM afterwards finds no stream left.
//!
//! Both answer only to loopback peers: anything that reaches the service
//! from another host gets 403 `not_loopback`. The check is on the
//! connection's own peer address, never on `X-Forwarded-For` or similar
//! headers, which any client can set. A loopback peer is not enough on its
//! own, though: a reverse proxy or sidecar on the same host connects from
//! loopback on behalf of anyone, and a browser on the host can be made to
//! POST to 127.0.0.1 by any page it opens. So a request that carries a sign
//! of either ([`RELAYED_HEADERS`]: the `Origin` every browser sends with a
//! cross-site POST, and the headers proxies add) is refused the same way.
//! A same-host proxy that adds none of them must not route `/admin` (the
//! Kubernetes Ingress in deploy/ does not).

use std::net::SocketAddr;

use crate::protocol::DrainStatus;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use flacstream_actors::registry::Snapshot;

use crate::error::ApiError;
use crate::state::AppState;

/// Starts draining (idempotent: a drain under way is left as it is) and
/// answers 202 with the [`DrainStatus`].
#[utoipa::path(
    operation_id = "startDrain",
    summary = "Start draining (loopback only)",
    tag = "operations",
    security(()),
    description = "Starts the drain SIGTERM starts (idempotent). Loopback peers only, and never through a proxy or from a browser.",
    responses(
        (status = 202, description = "Draining", body = DrainStatus),
        (status = 403, description = "`not_loopback`", body = crate::error::ErrorBody),
    )
)]
#[post("/admin/drain")]
pub async fn drain(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let peer = loopback_only(&req)?;
    let stopper = state
        .stopper
        .get()
        .ok_or_else(|| ApiError::Unavailable("the server is still starting".into()))?;
    if stopper.start_drain() {
        log::info!("Drain requested by {peer}.");
    }
    Ok(HttpResponse::Accepted().json(status(&state).await?))
}

/// Answers 200 with the [`DrainStatus`].
#[utoipa::path(
    operation_id = "getDrain",
    summary = "How the drain stands (loopback only)",
    tag = "operations",
    security(()),
    description = "How the drain stands. Loopback peers only.",
    responses(
        (status = 200, description = "The drain's state", body = DrainStatus),
        (status = 403, description = "`not_loopback`", body = crate::error::ErrorBody),
    )
)]
#[get("/admin/drain")]
pub async fn drain_status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    loopback_only(&req)?;
    Ok(HttpResponse::Ok().json(status(&state).await?))
}

async fn status(state: &AppState) -> Result<DrainStatus, ApiError> {
    let snapshot = state.registry.send(Snapshot).await?;
    let draining = state.draining.is_set();
    Ok(DrainStatus {
        status: if draining { "draining" } else { "ready" }.into(),
        streams: snapshot.sessions,
    })
}

/// Headers that show a request was relayed or sent by a browser page; a
/// loopback request that carries any of them is refused (see the module docs).
pub const RELAYED_HEADERS: &[&str] = &[
    "origin",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
    "via",
];

/// The peer, if it is on loopback (IPv4-mapped IPv6 loopback included) and
/// the request is not relayed or sent by a browser page.
fn loopback_only(req: &HttpRequest) -> Result<SocketAddr, ApiError> {
    let relayed = RELAYED_HEADERS
        .iter()
        .any(|name| req.headers().contains_key(*name));
    match req.peer_addr() {
        Some(peer) if peer.ip().to_canonical().is_loopback() && !relayed => Ok(peer),
        _ => Err(ApiError::NotLoopback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_loopback_peers_pass() {
        for (peer, ok) in [
            ("127.0.0.1:5000", true),
            ("127.8.9.10:5000", true),
            ("[::1]:5000", true),
            ("[::ffff:127.0.0.1]:5000", true),
            ("10.0.0.7:5000", false),
            ("[::ffff:10.0.0.7]:5000", false),
            ("[2001:db8::1]:5000", false),
        ] {
            let req = TestRequest::default()
                .peer_addr(peer.parse().expect("socket address"))
                .to_http_request();
            assert_eq!(loopback_only(&req).is_ok(), ok, "{peer}");
        }
        let no_peer = TestRequest::default().to_http_request();
        assert!(loopback_only(&no_peer).is_err());
    }

    #[test]
    fn loopback_requests_relayed_or_from_a_page_are_refused() {
        for name in RELAYED_HEADERS {
            let req = TestRequest::default()
                .peer_addr("127.0.0.1:5000".parse().expect("socket address"))
                .insert_header((*name, "http://example.com"))
                .to_http_request();
            assert!(loopback_only(&req).is_err(), "{name}");
        }
    }
}
