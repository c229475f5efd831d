//! The HTTP API against its OpenAPI document (`GET /openapi.json`): every
//! documented operation is routed, every route is documented, and what no
//! route takes gets the documented JSON 404 or 405. (tests/api/ checks the
//! document against the OpenAPI 3.1 schema and sends its examples.)

use serde_json::Value;

use crate::common::{http_json, http_request, start};

/// The routes source: every route is a `service(...)` there.
const ROUTES_RS: &str = include_str!("../../src/routes.rs");

/// The document's operations as (method, path with each `{parameter}`
/// filled in by its example).
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(operation) = item.get(method) {
                operations.push((method.to_ascii_uppercase(), concrete(path, operation)));
            }
        }
    }
    operations
}

/// `template` with each path parameter replaced by its documented example.
fn concrete(template: &str, operation: &Value) -> String {
    let example = |name: &str| {
        operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["in"] == "path" && p["name"] == name)
            .and_then(|p| p["example"].as_str())
            .unwrap_or_else(|| panic!("path parameter {name} of {template} has no example"))
            .to_string()
    };
    template
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => example(name),
                None => s.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_rt::test]
async fn every_documented_operation_is_routed() {
    let server = start(&[]);
    let (status, document) = http_json(server.addr, "GET", "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let mut operations = operations(&document);
    assert!(operations.len() >= 35, "{operations:?}");
    // The drain last: it stops this server taking new work.
    operations.sort_by_key(|(method, path)| method == "POST" && path == "/admin/drain");
    for (method, path) in operations {
        let answer = http_request(server.addr, &method, &path, &[], b"").await;
        let code = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string));
        // The handler answered, whatever it thought of the request: not the
        // default service's 404 `not_found` or 405.
        assert_ne!(answer.status, 405, "{method} {path}");
        assert_ne!(code.as_deref(), Some("not_found"), "{method} {path}");
        assert_ne!(
            code.as_deref(),
            Some("method_not_allowed"),
            "{method} {path}"
        );
    }
    server.drain().await;
}

#[test]
fn every_route_is_a_documented_service() {
    // utoipa-actix-web documents what `service(...)` registers and nothing
    // that `route(...)` or `web::resource` would: the table has only the
    // former, one per documented operation.
    assert!(!ROUTES_RS.contains(".route("), "an undocumented route");
    assert!(
        !ROUTES_RS.contains("web::resource"),
        "an undocumented route"
    );
    let services = ROUTES_RS.matches(".service(").count();
    let document = serde_json::to_value(flacstream::routes::document()).unwrap();
    assert_eq!(services, operations(&document).len());
}

#[actix_rt::test]
async fn unknown_paths_and_methods_get_json_404_and_405() {
    let server = start(&[]);
    let answer = http_request(server.addr, "GET", "/no/such/path", &[], b"").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["code"], "not_found");
    assert_eq!(answer.json()["type"], "error");

    let answer = http_request(server.addr, "PUT", "/api/audio/sessions/abc", &[], b"").await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.json()["code"], "method_not_allowed");
    assert_eq!(answer.header("allow"), Some("GET, DELETE, OPTIONS"));

    let answer = http_request(server.addr, "GET", "/convert", &[], b"").await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST, OPTIONS"));

    let answer = http_request(server.addr, "OPTIONS", "/admin/drain", &[], b"").await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.header("allow"), Some("GET, POST, OPTIONS"));

    // Counted like every refusal.
    let (_, metrics) = crate::common::http_get(server.addr, "/metrics").await;
    assert!(metrics.contains("code=\"not_found\""), "{metrics}");
    server.drain().await;
}

#[actix_rt::test]
async fn the_docs_and_the_asyncapi_document_are_served_from_the_binary() {
    let server = start(&[]);
    let page = http_request(server.addr, "GET", "/docs/", &[], b"").await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("swagger-ui"), "{html}");
    // Everything the page loads is relative: served here, no CDN.
    assert!(
        !html.contains("//cdn") && !html.contains("unpkg.com"),
        "{html}"
    );
    let init = http_request(server.addr, "GET", "/docs/swagger-initializer.js", &[], b"").await;
    assert_eq!(init.status, 200);
    assert!(String::from_utf8_lossy(&init.body).contains("/openapi.json"));
    let redirect = http_request(server.addr, "GET", "/docs", &[], b"").await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/docs/"));
    let missing = http_request(server.addr, "GET", "/docs/nope.js", &[], b"").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");

    let asyncapi = http_request(server.addr, "GET", "/asyncapi.yaml", &[], b"").await;
    assert_eq!(asyncapi.status, 200);
    let text = String::from_utf8_lossy(&asyncapi.body);
    assert!(
        text.starts_with("asyncapi: 3.") || text.contains("\nasyncapi: 3."),
        "{text:.200}"
    );
    for channel in ["/stream", "/api/ws/audio"] {
        assert!(text.contains(channel), "{channel}");
    }
    server.drain().await;
}

#[test]
fn operation_ids_are_unique() {
    // OpenAPI requires it; client generators and Swagger UI key on them.
    let document = serde_json::to_value(flacstream::routes::document()).unwrap();
    let mut seen = std::collections::HashSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(seen.insert(id.to_string()), "{id} twice");
        }
    }
    assert!(seen.len() >= 35);
}

#[actix_rt::test]
async fn a_query_that_does_not_parse_gets_json() {
    let server = start(&[]);
    let path = "/api/jobs?nope=1";
    let answer = http_request(server.addr, "GET", path, &[], b"").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], "bad_parameter");
    let answer = http_request(
        server.addr,
        "GET",
        "/api/jobs?session_id=a&session_id=b",
        &[],
        b"",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], "bad_parameter");
    server.drain().await;
}
