//! `POST /api/tokens`: a short-lived token for a browser, asked for with an
//! API key.
//!
//! ```text
//! POST /api/tokens
//! Authorization: Bearer <API key>
//! Content-Type: application/json
//!
//! {"session_id": "<uuid>", "user_id": "ann", "ttl_seconds": 120}
//! ```
//!
//! At least one of `session_id` and `user_id`; `ttl_seconds` is 1 to
//! [`MAX_TOKEN_TTL_SECONDS`] (default [`DEFAULT_TOKEN_TTL_SECONDS`]). The
//! answer is `{"token": "fst1_…", "expires_at": <Unix seconds>}`. Only a key
//! may ask (a token gets 403 `forbidden`); with authentication off the
//! endpoint answers 404 `auth_disabled`.

use actix_web::{post, web, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::auth::token::{
    expiry_after, valid_user_id, Claims, DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS,
    MAX_TOKEN_USER_ID_BYTES,
};
use crate::auth::{Access, Auth};
use crate::error::ApiError;
use crate::ids::parse_chosen_id;

/// Largest request body, in bytes: the longest valid request is under 300.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 4096;

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"session_id": "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a", "user_id": "ann", "ttl_seconds": 120}))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The one session the token reaches (and may create).
    pub session_id: Option<String>,
    /// The user the token acts for.
    pub user_id: Option<String>,
    /// Lifetime in seconds.
    pub ttl_seconds: Option<u64>,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The token.
    pub token: String,
    /// When it stops working, Unix seconds.
    pub expires_at: u64,
}

async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Upload(e.to_string()))?;
        if body.len() + chunk.len() > MAX_TOKEN_REQUEST_BYTES {
            return Err(ApiError::BadParameter(format!(
                "the request body is over {MAX_TOKEN_REQUEST_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /api/tokens`; see the module docs.
#[utoipa::path(
    operation_id = "issueToken",
    summary = "Issue a short-lived token",
    tag = "tokens",
    description = "A short-lived token for a browser, scoped to a session, a user or both; asked for with an API key (a token gets 403). With authentication off: 404 `auth_disabled`.",
    request_body(content = TokenRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token", body = TokenResponse),
        (status = 400, description = "`bad_parameter`", body = crate::error::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: a token cannot ask for a token", body = crate::error::ErrorBody),
        (status = 404, description = "`auth_disabled`", body = crate::error::ErrorBody),
    )
)]
#[post("/api/tokens")]
pub async fn issue(
    access: Access,
    payload: web::Payload,
    auth: web::Data<Auth>,
) -> Result<HttpResponse, ApiError> {
    let principal = match access {
        Access::Open => return Err(ApiError::AuthDisabled),
        Access::Principal(p) if p.via_token => {
            return Err(ApiError::Forbidden(
                "tokens are issued to API keys only".into(),
            ))
        }
        Access::Principal(p) => p,
    };
    let body = read_body(payload).await?;
    let request: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadParameter(format!("bad token request: {e}")))?;
    let session_id = request
        .session_id
        .as_deref()
        .map(parse_chosen_id)
        .transpose()?;
    if let Some(user) = &request.user_id {
        if !valid_user_id(user) {
            return Err(ApiError::BadParameter(format!(
                "user_id must be 1 to {MAX_TOKEN_USER_ID_BYTES} of A-Z a-z 0-9 . _ - @ + :"
            )));
        }
    }
    if session_id.is_none() && request.user_id.is_none() {
        return Err(ApiError::BadParameter(
            "a token needs a scope: session_id, user_id or both".into(),
        ));
    }
    let ttl = request.ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS);
    if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::BadParameter(format!(
            "ttl_seconds must be 1 to {MAX_TOKEN_TTL_SECONDS}"
        )));
    }
    let key_fingerprint = auth
        .key_fingerprint(&principal.key_id)
        .ok_or_else(|| ApiError::Unauthorized("the API key is not valid".into()))?;
    let claims = Claims {
        key_id: principal.key_id,
        key_fingerprint,
        user_id: request.user_id,
        session_id,
        expires_at: expiry_after(ttl),
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            token: auth.issue(&claims),
            expires_at: claims.expires_at,
        }))
}
