//! The extractor every endpoint under a session id (`{id}` in its path)
//! starts with: the caller passed [`Access`], may reach that id, and, with
//! authentication on, owns the session. An endpoint that takes a
//! [`SessionAccess`] cannot reach a session without these checks.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev, web, FromRequest, HttpRequest};
use flacstream_actors::registry::{Lookup, SessionId};
use flacstream_actors::session::Describe;
use flacstream_actors::store::{Load, SessionRecord};

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// The path segment that holds the session id.
const ID_SEGMENT: &str = "id";

/// A caller allowed at session [`SessionAccess::id`].
#[derive(Debug)]
pub struct SessionAccess {
    /// The session, from the path.
    pub id: SessionId,
    /// The record and live connection count the ownership check read (only
    /// with authentication on), so the endpoint need not read them again.
    found: Option<(SessionRecord, usize)>,
}

impl SessionAccess {
    /// The session's record, with its live connection count if it is
    /// running: the one the ownership check read, else a fresh lookup.
    pub async fn current(&mut self, state: &AppState) -> Result<(SessionRecord, usize), ApiError> {
        match self.found.take() {
            Some(found) => Ok(found),
            None => current(state, self.id).await,
        }
    }
}

impl FromRequest for SessionAccess {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let access = Access::from_request(req, payload).into_inner();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // Not a UUID: no such session, whoever asks.
        let id = req
            .match_info()
            .get(ID_SEGMENT)
            .and_then(|raw| SessionId::parse_str(raw).ok());
        Box::pin(async move {
            let access = access?;
            let id = id.ok_or(ApiError::SessionNotFound)?;
            let state = state
                .ok_or_else(|| ApiError::Unavailable("the server has no session state".into()))?;
            Self::check(&access, &state, id).await
        })
    }
}

impl SessionAccess {
    /// Whether `access` may reach session `id` (its owner, with
    /// authentication on): what the extractor checks, for endpoints that
    /// find the id another way (the phrase API).
    pub async fn check(access: &Access, state: &AppState, id: SessionId) -> Result<Self, ApiError> {
        access.reach(id)?;
        let found = match access.principal() {
            Some(_) => {
                let found = current(state, id).await?;
                access.check_owner(&found.0)?;
                Some(found)
            }
            // With authentication off everyone may, without a lookup.
            None => None,
        };
        Ok(Self { id, found })
    }
}

/// The stored record, with live counters if the session is running.
pub async fn current(state: &AppState, id: SessionId) -> Result<(SessionRecord, usize), ApiError> {
    if let Some(session) = state.registry.send(Lookup::new(id)).await? {
        if let Ok(view) = session.send(Describe).await {
            if let Some(record) = view.record {
                return Ok((record, view.connections));
            }
        }
    }
    let record = state
        .store
        .send(Load { id })
        .await??
        .ok_or(ApiError::SessionNotFound)?;
    Ok((record, 0))
}
