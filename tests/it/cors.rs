//! CORS for `--allowed-origins` (src/auth/cors.rs): a listed page's
//! preflight is answered and its requests carry its exact origin back; an
//! unlisted page gets no CORS header and its request 403
//! `origin_not_allowed`. (tests/browser/cors.test.mjs does the same from
//! Chromium.)

use crate::common::{http_request, start};

const LISTED: &str = "https://app.example";
const UNLISTED: &str = "https://evil.example";

#[actix_rt::test]
async fn a_listed_origin_gets_its_preflight_and_its_answers() {
    let server = start(&["--allowed-origins", LISTED]);
    let preflight = [
        ("Origin", LISTED),
        ("Access-Control-Request-Method", "DELETE"),
        (
            "Access-Control-Request-Headers",
            "authorization, x-request-id",
        ),
    ];
    let answer = http_request(
        server.addr,
        "OPTIONS",
        "/api/audio/sessions/x",
        &preflight,
        b"",
    )
    .await;
    assert!(
        answer.status == 200 || answer.status == 204,
        "{}",
        answer.status
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = answer.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("DELETE") && methods.contains("POST"),
        "{methods}"
    );
    let headers = answer
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(answer.header("access-control-max-age").is_some());
    // Never `*` with credentials (Fetch standard).
    assert!(answer.headers.iter().all(|(_, v)| v != "*"));

    let answer = http_request(
        server.addr,
        "GET",
        "/api/audio/sessions",
        &[("Origin", LISTED)],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some(LISTED));
    let vary = answer
        .header("vary")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(vary.contains("origin"), "{vary}");
    let exposed = answer
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["location", "retry-after", "flacstream-lossless"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    server.drain().await;
}

#[actix_rt::test]
async fn an_unlisted_origin_gets_no_cors_and_a_403() {
    let server = start(&["--allowed-origins", LISTED]);
    let preflight = [
        ("Origin", UNLISTED),
        ("Access-Control-Request-Method", "POST"),
    ];
    let answer = http_request(server.addr, "OPTIONS", "/convert", &preflight, b"").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let answer = http_request(
        server.addr,
        "GET",
        "/api/audio/sessions",
        &[("Origin", UNLISTED)],
        b"",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["code"], "origin_not_allowed");
    assert_eq!(answer.header("access-control-allow-origin"), None);
    server.drain().await;
}

#[actix_rt::test]
async fn without_an_allow_list_no_cors_header_is_sent() {
    let server = start(&[]);
    let answer = http_request(server.addr, "GET", "/healthz", &[("Origin", LISTED)], b"").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .headers
            .iter()
            .all(|(n, _)| !n.starts_with("access-control-")),
        "{:?}",
        answer.headers
    );
    server.drain().await;
}
