//! The access log: one line per HTTP request when its response has been
//! sent (or abandoned), and for a WebSocket one more when the socket ends.
//! Target `flacstream::access`, level info, so `RUST_LOG` can route or
//! silence it (`RUST_LOG=info,flacstream::access=off`).
//!
//! A line names the route pattern (`/api/audio/sessions/{id}`), so lines
//! of one endpoint group together, and the path without its query string:
//! a query may hold a token (`?token=`), and no header is logged at all, so
//! neither can an `Authorization` or `Sec-WebSocket-Protocol` credential.
//! In JSON logs ([`crate::logging`]) each field is a key of its own.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpRequest};
use log::kv;

use crate::limits::client_ip::ClientIp;
use crate::request_id::RequestId;
use crate::state::AppState;

/// The log target of every access line.
pub const TARGET: &str = "flacstream::access";

/// What the middleware learnt of a request on its way in, for the
/// WebSocket's end line ([`SocketAccess::of`]).
#[derive(Debug, Clone, Copy)]
struct Arrival {
    client: IpAddr,
    started: Instant,
}

/// The session a request started or joined, when its handler knows it and
/// the path does not say (a new WebSocket session).
#[derive(Debug, Clone)]
struct SessionOf(String);

/// Tells the access log which session `req` belongs to.
pub fn note_session(req: &HttpRequest, session_id: String) {
    req.extensions_mut().insert(SessionOf(session_id));
}

/// One HTTP request's line.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLine {
    /// `GET`, `POST`, …
    pub method: String,
    /// The matched route's pattern, `-` when none matched.
    pub route: String,
    /// The path, without the query string.
    pub path: String,
    /// The response's status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request's arrival to the end of its body, in milliseconds.
    pub duration_ms: f64,
    /// The client's address, as the per-client limits see it.
    pub client: IpAddr,
    /// The session, where known.
    pub session_id: Option<String>,
    /// The request's id.
    pub request_id: Option<String>,
}

impl HttpLine {
    /// The line as text.
    pub fn text(&self) -> String {
        format!(
            "{} {} {} {}B {:.1}ms client={} session={} request_id={} path={}",
            self.method,
            self.route,
            self.status,
            self.bytes,
            self.duration_ms,
            self.client,
            self.session_id.as_deref().unwrap_or("-"),
            self.request_id.as_deref().unwrap_or("-"),
            self.path,
        )
    }

    /// Logs the line, its fields as key-values.
    pub fn log(&self) {
        if log::log_enabled!(target: TARGET, log::Level::Info) {
            self.with_record(|record| log::logger().log(record));
        }
    }

    /// Hands the line's record to `f`.
    pub fn with_record(&self, f: impl FnOnce(&log::Record<'_>)) {
        let client = self.client.to_string();
        let fields: [(&str, kv::Value<'_>); 11] = [
            ("kind", "http".into()),
            ("method", self.method.as_str().into()),
            ("route", self.route.as_str().into()),
            ("path", self.path.as_str().into()),
            ("status", self.status.into()),
            ("bytes", self.bytes.into()),
            ("duration_ms", round_ms(self.duration_ms).into()),
            ("client", client.as_str().into()),
            ("session_id", optional(self.session_id.as_deref())),
            ("request_id", optional(self.request_id.as_deref())),
            ("event", "end".into()),
        ];
        emit(&self.text(), &fields, f);
    }
}

/// One WebSocket's end line.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketLine {
    /// The upgrade's route pattern.
    pub route: String,
    /// The close code sent (or, if none was, received); `None` when the
    /// connection ended without one.
    pub close_code: Option<u16>,
    /// Message bytes received from the client.
    pub bytes_in: u64,
    /// Message bytes sent to the client.
    pub bytes_out: u64,
    /// From the upgrade request's arrival to the end, in milliseconds.
    pub duration_ms: f64,
    /// The client's address.
    pub client: Option<IpAddr>,
    /// The session.
    pub session_id: String,
    /// The upgrade request's id.
    pub request_id: Option<String>,
}

impl SocketLine {
    /// The line as text.
    pub fn text(&self) -> String {
        format!(
            "WS {} closed {} in={}B out={}B {:.1}ms client={} session={} request_id={}",
            self.route,
            self.close_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            self.bytes_in,
            self.bytes_out,
            self.duration_ms,
            self.client
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            self.session_id,
            self.request_id.as_deref().unwrap_or("-"),
        )
    }

    /// Logs the line, its fields as key-values.
    pub fn log(&self) {
        if log::log_enabled!(target: TARGET, log::Level::Info) {
            self.with_record(|record| log::logger().log(record));
        }
    }

    /// Hands the line's record to `f`.
    pub fn with_record(&self, f: impl FnOnce(&log::Record<'_>)) {
        let client = self.client.map(|c| c.to_string());
        let fields: [(&str, kv::Value<'_>); 10] = [
            ("kind", "websocket".into()),
            ("route", self.route.as_str().into()),
            (
                "close_code",
                self.close_code
                    .map_or_else(kv::Value::null, kv::Value::from),
            ),
            ("bytes_in", self.bytes_in.into()),
            ("bytes_out", self.bytes_out.into()),
            ("duration_ms", round_ms(self.duration_ms).into()),
            ("client", optional(client.as_deref())),
            ("session_id", self.session_id.as_str().into()),
            ("request_id", optional(self.request_id.as_deref())),
            ("event", "close".into()),
        ];
        emit(&self.text(), &fields, f);
    }
}

/// A text field that may be unknown: null then.
fn optional(value: Option<&str>) -> kv::Value<'_> {
    value.map_or_else(kv::Value::null, kv::Value::from)
}

/// Builds an access record of `text` with `fields` and hands it to `f`.
fn emit(text: &str, fields: &[(&str, kv::Value<'_>)], f: impl FnOnce(&log::Record<'_>)) {
    f(&log::Record::builder()
        .args(format_args!("{text}"))
        .level(log::Level::Info)
        .target(TARGET)
        .module_path_static(Some(module_path!()))
        .file_static(Some(file!()))
        .line(Some(line!()))
        .key_values(&fields)
        .build());
}

/// Milliseconds to a tenth, as a log field.
fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// The middleware: notes the request's arrival and client, and logs its
/// line once the response body is done. Outermost, so its time and bytes
/// cover everything, and inside [`crate::request_id::middleware`]'s work.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<Counted>, actix_web::Error> {
    let started = Instant::now();
    let client = match req.app_data::<web::Data<AppState>>() {
        Some(state) => ClientIp::of(req.request(), &state.settings.trusted_proxies).ip(),
        None => ClientIp::of(req.request(), &Default::default()).ip(),
    };
    req.extensions_mut().insert(Arrival { client, started });
    let method = req.method().to_string();
    let path = req.path().to_owned();
    // Not cloned before the call: routing needs the request unshared.
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(e) => {
            // Only a middleware inside this one returns an error (handlers'
            // are responses by now); actix renders it after this, so it is
            // logged here, without what the request no longer tells.
            HttpLine {
                method,
                route: "-".to_owned(),
                path,
                status: e.as_response_error().status_code().as_u16(),
                bytes: 0,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                client,
                session_id: None,
                request_id: None,
            }
            .log();
            return Err(e);
        }
    };
    let req = response.request();
    let line = HttpLine {
        method,
        route: req.match_pattern().unwrap_or_else(|| "-".to_owned()),
        path,
        status: response.status().as_u16(),
        bytes: 0,
        duration_ms: 0.0,
        client,
        session_id: session_of(req),
        request_id: RequestId::of(req).map(|id| id.to_string()),
    };
    Ok(response.map_body(|_, body| Counted {
        body,
        line: Some(line),
        started,
    }))
}

fn session_of(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<SessionOf>()
        .map(|s| s.0.clone())
        .or_else(|| req.match_info().get("id").map(str::to_owned))
}

/// A response body that counts what it sends and logs the request's line
/// when it is dropped: after its last byte, or when the client left.
pub struct Counted {
    body: BoxBody,
    line: Option<HttpLine>,
    started: Instant,
}

impl MessageBody for Counted {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let n = bytes.len() as u64;
            if let Some(line) = &mut self.line {
                line.bytes += n;
            }
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(mut line) = self.line.take() {
            line.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            line.log();
        }
    }
}

/// What a WebSocket's end line needs from its upgrade request.
#[derive(Debug, Clone)]
pub struct SocketAccess {
    route: String,
    client: Option<IpAddr>,
    request_id: Option<RequestId>,
    started: Instant,
    /// Bytes each way and the close code, counted by the socket's loops.
    pub traffic: Arc<SocketTraffic>,
}

impl SocketAccess {
    /// Taken from the upgrade request.
    pub fn of(req: &HttpRequest) -> Self {
        let arrival = req.extensions().get::<Arrival>().copied();
        Self {
            route: req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
            client: arrival.map(|a| a.client),
            request_id: RequestId::of(req),
            started: arrival.map_or_else(Instant::now, |a| a.started),
            traffic: Arc::default(),
        }
    }

    /// The upgrade request's id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// Logs the socket's end line.
    pub fn end(&self, session_id: String) {
        let close = self.traffic.close_code.load(Ordering::Relaxed);
        SocketLine {
            route: self.route.clone(),
            close_code: (close != 0).then_some(close as u16),
            bytes_in: self.traffic.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.traffic.bytes_out.load(Ordering::Relaxed),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            client: self.client,
            session_id,
            request_id: self.request_id.as_ref().map(|id| id.to_string()),
        }
        .log();
    }
}

/// A WebSocket's traffic, counted by its read and write loops.
#[derive(Debug, Default)]
pub struct SocketTraffic {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// 0 until a close code is known.
    close_code: AtomicU32,
}

impl SocketTraffic {
    /// Counts a message received.
    pub fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a message sent.
    pub fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Notes the close code, unless one is noted already (the first wins:
    /// the server's when it closes first, else the client's).
    pub fn closed(&self, code: u16) {
        let _ = self.close_code.compare_exchange(
            0,
            u32::from(code),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_line() -> HttpLine {
        HttpLine {
            method: "GET".into(),
            route: "/api/audio/sessions/{id}".into(),
            path: "/api/audio/sessions/abc".into(),
            status: 404,
            bytes: 77,
            duration_ms: 1.26,
            client: "10.1.2.3".parse().unwrap(),
            session_id: Some("abc".into()),
            request_id: Some("r1".into()),
        }
    }

    #[test]
    fn an_http_line_names_route_status_bytes_time_client_session_and_id() {
        assert_eq!(
            http_line().text(),
            "GET /api/audio/sessions/{id} 404 77B 1.3ms client=10.1.2.3 session=abc \
             request_id=r1 path=/api/audio/sessions/abc"
        );
        let unknown = HttpLine {
            session_id: None,
            request_id: None,
            ..http_line()
        };
        assert!(unknown.text().contains("session=- request_id=-"));
    }

    #[test]
    fn a_socket_line_names_close_code_and_traffic() {
        let line = SocketLine {
            route: "/api/ws/audio".into(),
            close_code: Some(1000),
            bytes_in: 10,
            bytes_out: 20,
            duration_ms: 1500.04,
            client: Some("::1".parse().unwrap()),
            session_id: "s".into(),
            request_id: Some("r".into()),
        };
        assert_eq!(
            line.text(),
            "WS /api/ws/audio closed 1000 in=10B out=20B 1500.0ms client=::1 session=s request_id=r"
        );
        let none = SocketLine {
            close_code: None,
            client: None,
            ..line
        };
        assert!(none.text().contains("closed - ") && none.text().contains("client=-"));
    }

    #[test]
    fn in_json_each_field_is_a_key() {
        let mut json = String::new();
        http_line().with_record(|r| json = crate::logging::json_line("t", r));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["target"], TARGET);
        assert_eq!(v["message"], http_line().text());
        assert_eq!(v["kind"], "http");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["route"], "/api/audio/sessions/{id}");
        assert_eq!(v["path"], "/api/audio/sessions/abc");
        assert_eq!(v["status"], 404);
        assert_eq!(v["bytes"], 77);
        assert_eq!(v["duration_ms"], 1.3);
        assert_eq!(v["client"], "10.1.2.3");
        assert_eq!(v["session_id"], "abc");
        assert_eq!(v["request_id"], "r1");
        let socket = SocketLine {
            route: "/stream".into(),
            close_code: Some(1000),
            bytes_in: 1,
            bytes_out: 2,
            duration_ms: 3.0,
            client: None,
            session_id: "s".into(),
            request_id: None,
        };
        socket.with_record(|r| json = crate::logging::json_line("t", r));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "websocket");
        assert_eq!(v["close_code"], 1000);
        assert_eq!(v["bytes_in"], 1);
        assert_eq!(v["bytes_out"], 2);
        assert!(v["client"].is_null() && v["request_id"].is_null());
        assert_eq!(v["session_id"], "s");
    }

    #[test]
    fn the_first_close_code_wins() {
        let t = SocketTraffic::default();
        t.closed(1008);
        t.closed(1000);
        assert_eq!(t.close_code.load(Ordering::Relaxed), 1008);
    }
}
