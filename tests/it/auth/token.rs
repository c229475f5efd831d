//! Tokens: issued to API keys only, short-lived, and good in the query, the
//! WebSocket protocol list and the header, for their own session only.

use super::*;

#[actix_rt::test]
async fn tokens_are_issued_to_keys_only_and_expire() {
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    let scope = json!({"user_id": "ann"});

    assert_eq!(
        ask_token(addr, None, scope.clone()).await.code(),
        (401, "unauthorized".into())
    );
    assert_eq!(
        ask_token(addr, Some("not-a-key"), scope.clone())
            .await
            .code(),
        (401, "unauthorized".into())
    );
    let answer = ask_token(
        addr,
        Some(&keys.k1),
        json!({"user_id": "ann", "ttl_seconds": 300}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let issued = answer.json();
    let issued_token = issued["token"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires_at = issued["expires_at"].as_u64().unwrap();
    assert!((now + 299..=now + 301).contains(&expires_at), "{issued}");
    // A token cannot ask for tokens.
    assert_eq!(
        ask_token(addr, Some(issued_token), scope.clone())
            .await
            .code(),
        (403, "forbidden".into())
    );
    for bad in [
        json!({}),
        json!({"user_id": "ann", "ttl_seconds": 301}),
        json!({"user_id": "ann", "ttl_seconds": 0}),
        json!({"user_id": "ann smith"}),
        json!({"session_id": "not-a-uuid"}),
        json!({"user_id": "ann", "admin": true}),
    ] {
        assert_eq!(
            ask_token(addr, Some(&keys.k1), bad.clone()).await.code(),
            (400, "bad_parameter".into()),
            "{bad}"
        );
    }

    // Expiry: a one-second token works at once, and not two seconds later.
    let short = token(addr, &keys.k1, json!({"user_id": "ann", "ttl_seconds": 1})).await;
    let path = format!("/stream?access_token={short}");
    let (ws, _) = connect(addr, &path, &[]).await.unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = connect(addr, &path, &[]).await.err().unwrap();
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    service.drain().await;
}

#[actix_rt::test]
async fn tokens_work_in_the_query_the_protocol_and_the_header_for_their_session_only() {
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    let mine = uuid::Uuid::new_v4().to_string();
    let other = uuid::Uuid::new_v4().to_string();
    let scoped = token(addr, &keys.k1, json!({"session_id": mine})).await;

    // Another session: refused before anything is looked up.
    let forbidden = (403, "forbidden".to_string());
    let path = format!("{OPEN}&session_id={other}&access_token={scoped}");
    assert_eq!(refused(addr, &path, &[]).await, forbidden);
    let path = format!("/api/ws/audio/{other}?access_token={scoped}");
    assert_eq!(refused(addr, &path, &[]).await, forbidden);
    for (method, path) in [
        ("GET", format!("/api/audio/sessions/{other}")),
        ("GET", format!("/api/audio/sessions/{other}/audio")),
        ("POST", format!("/api/audio/sessions/{other}/close")),
        ("DELETE", format!("/api/audio/sessions/{other}")),
        ("GET", "/api/audio/sessions".to_string()),
    ] {
        let answer = request(addr, method, &path, &[bearer(&scoped)], b"").await;
        assert_eq!(answer.code(), forbidden, "{method} {path}");
    }
    // Nor does it stream anonymously.
    let path = format!("/stream?access_token={scoped}");
    assert_eq!(refused(addr, &path, &[]).await, forbidden);
    // Nor does it put its session in a user's list and reach: the key
    // asked for no user.
    let path = format!("{OPEN}&user_id=bob&access_token={scoped}");
    assert_eq!(refused(addr, &path, &[]).await, forbidden);
    let path = format!("/upload?user_id=bob&access_token={scoped}");
    let answer = request(addr, "POST", &path, &[], b"").await;
    assert_eq!(answer.code(), forbidden);

    // Its own session, opened by query token (the id defaults to the scope).
    let path = format!("{OPEN}&access_token={scoped}");
    let (ws, _) = connect(addr, &path, &[]).await.unwrap();
    let (id, samples) = record(ws).await;
    assert_eq!(id, mine);
    download_exactly(addr, &id, &scoped, &samples).await;
    let answer = request(
        addr,
        "GET",
        &format!("/api/audio/sessions/{mine}"),
        &[bearer(&scoped)],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["samples"], 16_000);

    // By WebSocket protocol: the server selects flacstream.v1.
    let user = token(addr, &keys.k1, json!({"user_id": "ann"})).await;
    let protocols = (
        "sec-websocket-protocol",
        format!("flacstream.v1, flacstream.token.{user}"),
    );
    let (ws, response) = connect(addr, OPEN, &[protocols]).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "flacstream.v1"
    );
    let (id, samples) = record(ws).await;
    download_exactly(addr, &id, &user, &samples).await;
    let answer = request(
        addr,
        "GET",
        &format!("/api/audio/sessions/{id}"),
        &[bearer(&keys.k1)],
        b"",
    )
    .await;
    assert_eq!(answer.json()["user_id"], "ann");
    // The token alone as a protocol: the server selects none, and a client
    // (a browser, or tungstenite here) gives up on the connection.
    let alone = ("sec-websocket-protocol", format!("flacstream.token.{user}"));
    let mut req = format!("ws://{addr}/stream").into_client_request().unwrap();
    req.headers_mut()
        .insert(alone.0, HeaderValue::from_str(&alone.1).unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());

    // A user's token in the Authorization header streams.
    let (ws, _) = connect(addr, "/stream", &[bearer(&user)]).await.unwrap();
    stream_exactly(ws).await;
    service.drain().await;
}
