//! The `Origin` allow-list: browser pages other than the service's own and
//! the listed origins are refused, and a rebound host name is not the
//! service's own origin.

use super::*;

#[actix_rt::test]
async fn browser_origins_other_than_the_service_and_the_allow_list_are_refused() {
    captured();
    let service = common::start(&["--allowed-origins", "https://app.example"]);
    let addr = service.addr;
    let refused_origin = (403, "origin_not_allowed".to_string());
    let evil = [("origin", "http://evil.example".to_string())];

    for path in ["/stream", OPEN] {
        assert_eq!(refused(addr, path, &evil).await, refused_origin);
    }
    let answer = request(addr, "POST", "/convert", &evil, b"").await;
    assert_eq!(answer.code(), refused_origin);
    let answer = request(addr, "GET", "/api/audio/sessions", &evil, b"").await;
    assert_eq!(answer.code(), refused_origin);
    // The page and health stay reachable.
    assert_eq!(request(addr, "GET", "/", &evil, b"").await.status, 200);

    // The service's own page, and the listed origin.
    for origin in [format!("http://{addr}"), "https://app.example".to_string()] {
        let (ws, _) = connect(addr, "/stream", &[("origin", origin)])
            .await
            .unwrap();
        stream_exactly(ws).await;
    }
    // No Origin at all: not a browser, not refused (auth is off here).
    let (ws, _) = connect(addr, "/stream", &[]).await.unwrap();
    stream_exactly(ws).await;
    service.drain().await;

    // With authentication on, the Origin check still comes first.
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let [evil] = evil;
    let evil_with_key = [evil, bearer(&keys.k1)];
    assert_eq!(
        refused(service.addr, "/stream", &evil_with_key).await,
        refused_origin
    );
    service.drain().await;
}

/// A GET with `host` as its `Host` header and as its page's origin: what a
/// browser sends from `http://{host}`.
async fn get_as_page_of(addr: SocketAddr, path: &str, host: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(CLIENT_TIMEOUT, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let code = serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

/// Opens `/stream` as a page at `http://{host}` would: `Host` and `Origin`.
async fn stream_as_page_of(addr: SocketAddr, host: &str) -> Result<(Ws, Response), (u16, Value)> {
    connect(
        addr,
        "/stream",
        &[
            ("host", host.to_string()),
            ("origin", format!("http://{host}")),
        ],
    )
    .await
}

#[actix_rt::test]
async fn a_rebound_host_name_is_not_the_services_own_origin() {
    captured();
    let service = common::start(&["--allowed-origins", "http://audio.example:8080"]);
    let addr = service.addr;
    let refused_origin = (403, "origin_not_allowed".to_string());
    // DNS rebinding: the attacker's name re-resolves to the service, so the
    // browser's Host and Origin agree. Auth is off (the default) here.
    let rebound = format!("rebind.attacker.example:{}", addr.port());
    assert_eq!(
        get_as_page_of(addr, "/api/audio/sessions", &rebound).await,
        refused_origin
    );
    let Err((status, body)) = stream_as_page_of(addr, &rebound).await else {
        panic!("the rebound page's WebSocket was accepted");
    };
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    // An IP literal and localhost cannot be rebound: the page served from
    // them is the service's own, as is a name listed in --allowed-origins.
    for host in [
        addr.to_string(),
        format!("localhost:{}", addr.port()),
        "audio.example:8080".to_string(),
    ] {
        assert_eq!(
            get_as_page_of(addr, "/api/audio/sessions", &host).await.0,
            200,
            "{host}"
        );
        let (ws, _) = stream_as_page_of(addr, &host).await.unwrap();
        stream_exactly(ws).await;
    }
    service.drain().await;
}
