//! Request ids and the access log, here because this module owns the
//! process's capturing logger: a client's `X-Request-Id` comes back in the
//! response and in error bodies (HTTP and WebSocket), and each request and
//! each WebSocket's end is one access line with route, status and id, and
//! no credential.

use super::*;

#[actix_rt::test]
async fn request_ids_come_back_and_name_the_access_lines() {
    let log = captured();
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    let id = uuid::Uuid::new_v4();
    let path = format!("/api/audio/sessions/{id}");

    // A sane client id is kept, in the header and the error body.
    let mine = ("x-request-id", "access-test-404".to_string());
    let answer = request(addr, "GET", &path, &[bearer(&keys.k1), mine], b"").await;
    assert_eq!(answer.code(), (404, "session_not_found".into()));
    assert_eq!(answer.header("x-request-id"), Some("access-test-404"));
    assert_eq!(answer.json()["request_id"], "access-test-404");
    // An extractor's refusal (no credential) carries it too.
    let mine = ("x-request-id", "access-test-401".to_string());
    let answer = request(addr, "GET", &path, &[mine], b"").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["request_id"], "access-test-401");
    // An insane one is replaced; a success has one as well.
    let long = ("x-request-id", "x".repeat(129));
    let answer = request(addr, "GET", "/healthz", &[long], b"").await;
    assert_eq!(answer.status, 200);
    let made = answer.header("x-request-id").unwrap();
    assert_eq!(made.len(), 36, "{made}");
    assert!(answer.json()["request_id"].is_null(), "not an error body");

    // A WebSocket: its upgrade, and its end with close code and traffic.
    let good = token(addr, &keys.k1, json!({"user_id": "ann"})).await;
    let mine = ("x-request-id", "access-test-ws".to_string());
    let (ws, _) = connect(addr, &format!("/stream?access_token={good}"), &[mine])
        .await
        .unwrap();
    stream_exactly(ws).await;
    // A WebSocket error message carries the id.
    let mine = ("x-request-id", "access-test-ws-error".to_string());
    let (ws, _) = connect(addr, "/stream", &[bearer(&keys.k1), mine])
        .await
        .unwrap();
    let out = exchange(ws, vec![Message::text(r#"{"type":"nope"}"#)]).await;
    assert_eq!(out.error_code(), "bad_message", "{:?}", out.texts);
    assert_eq!(out.last_text()["request_id"], "access-test-ws-error");
    service.drain().await;

    // A WebSocket's end line comes after its closing handshake.
    let ws_end = |l: &String| {
        l.contains(" flacstream::access WS /stream closed 1000 ")
            && l.ends_with("request_id=access-test-ws")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log.lines().iter().any(ws_end) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = log.lines().clone();
    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" flacstream::access "))
        .collect();
    let find = |needle: &str| {
        access
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no access line with {needle:?}: {access:#?}"))
            .to_string()
    };
    let line = find("request_id=access-test-404");
    assert!(
        line.contains("GET /api/audio/sessions/{id} 404 ")
            && line.contains(&format!("session={id}"))
            && line.contains("client=127.0.0.1"),
        "{line}"
    );
    assert!(find("request_id=access-test-401").contains(" 401 "));
    assert!(find(&format!("request_id={made}")).contains("GET /healthz 200 "));
    let upgrade = find("request_id=access-test-ws ");
    assert!(upgrade.contains("GET /stream 101 "), "{upgrade}");
    assert!(
        !upgrade.contains("session=-"),
        "names the session: {upgrade}"
    );
    let end = access
        .iter()
        .find(|l| ws_end(l))
        .unwrap_or_else(|| panic!("no end line: {access:#?}"));
    assert!(!end.contains(" in=0B") && !end.contains(" out=0B"), "{end}");
    // The query string, which held the token, is nowhere.
    for line in &access {
        assert!(!line.contains("access_token"), "{line}");
        assert!(!line.contains(&good[5..]), "{line}");
    }
}
