//! What a request no route takes gets: 405 with `Allow` when its path is an
//! endpoint's under another method, else a JSON 404 (`not_found`); an
//! `OPTIONS` for a known path gets 204 with `Allow`.
//!
//! The table of paths and methods is the OpenAPI document's
//! ([`crate::routes::document`]), the same one the routes were registered
//! from, so the two agree.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

/// One path template's segments (`None` for a `{parameter}`) and methods.
#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Option<String>>,
    methods: Vec<Method>,
}

/// Every path the service routes, with its methods.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    templates: Vec<Template>,
}

impl RouteTable {
    /// The table of an OpenAPI document's paths.
    pub fn new(document: &utoipa::openapi::OpenApi) -> Self {
        let templates = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| Template {
                segments: segments(path)
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_string()))
                    .collect(),
                methods: [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect(),
            })
            .collect();
        Self { templates }
    }

    /// The methods `path` takes, `GET` first; empty if no template matches.
    pub fn methods(&self, path: &str) -> Vec<Method> {
        let asked: Vec<&str> = segments(path).collect();
        let mut methods: Vec<Method> = Vec::new();
        for template in &self.templates {
            let matches = template.segments.len() == asked.len()
                && template.segments.iter().zip(&asked).all(|(t, a)| match t {
                    Some(literal) => literal == a,
                    None => !a.is_empty(),
                });
            if matches {
                for m in &template.methods {
                    if !methods.contains(m) {
                        methods.push(m.clone());
                    }
                }
            }
        }
        methods.sort_by_key(|m| (m != Method::GET, m.to_string()));
        methods
    }
}

/// A path's segments after the leading `/` (`/` itself has one, empty).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// The default service: see the module docs.
pub async fn unrouted(req: HttpRequest, table: web::Data<RouteTable>) -> HttpResponse {
    use actix_web::ResponseError;
    let methods = table.methods(req.path());
    if methods.is_empty() {
        return ApiError::RouteNotFound(req.path().to_string()).error_response();
    }
    let allow = methods
        .iter()
        .map(Method::as_str)
        .chain(std::iter::once("OPTIONS"))
        .collect::<Vec<_>>()
        .join(", ");
    if req.method() == Method::OPTIONS {
        return HttpResponse::NoContent()
            .insert_header((header::ALLOW, allow))
            .finish();
    }
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    }
    .error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document with the service's shapes of paths (the real one is
    /// checked in tests/it/api_contract.rs; routes is above api).
    fn table() -> RouteTable {
        let op = serde_json::json!({"responses": {}});
        let document: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/": {"get": op},
                "/stream": {"get": op},
                "/admin/drain": {"get": op, "post": op},
                "/api/audio/sessions/{id}": {"get": op, "delete": op},
                "/api/audio/sessions/{id}/close": {"post": op},
            }
        }))
        .unwrap();
        RouteTable::new(&document)
    }

    #[test]
    fn templates_match_by_segment() {
        let t = table();
        assert_eq!(t.methods("/stream"), [Method::GET]);
        assert_eq!(t.methods("/admin/drain"), [Method::GET, Method::POST]);
        assert_eq!(
            t.methods("/api/audio/sessions/abc"),
            [Method::GET, Method::DELETE]
        );
        assert_eq!(t.methods("/api/audio/sessions/abc/close"), [Method::POST]);
        assert!(t.methods("/api/audio/sessions/abc/nope").is_empty());
        assert!(t.methods("/nope").is_empty());
        assert!(t.methods("/api/audio/sessions//close").is_empty());
        assert_eq!(t.methods("/"), [Method::GET]);
    }
}
