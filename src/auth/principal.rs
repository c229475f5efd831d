//! Who a request acts for, and what that lets it reach.
//!
//! With authentication on, every session a request creates is owned by its
//! principal's key (and user, if the credential carries one), and only that
//! owner reaches it afterwards. A credential scoped to one session reaches
//! that session only.

use std::borrow::Cow;

use flacstream_actors::registry::SessionId;
use flacstream_actors::store::SessionRecord;

use crate::error::ApiError;

/// An authenticated caller: an API key, or a token an API key asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (for a token, the key that asked for it).
    pub key_id: String,
    /// The user a token acts for; `None` for a key, which acts for all its
    /// users.
    pub user_id: Option<String>,
    /// The one session a token reaches, if scoped to one.
    pub session_id: Option<SessionId>,
    /// Whether the credential was a token (tokens cannot ask for tokens).
    pub via_token: bool,
}

impl Principal {
    /// The key to count per-key limits under (new sessions per minute):
    /// `<key id>:<user id>` for a token with a user, so one user of a key
    /// (a browser) cannot spend the allowance of its other users; else the
    /// key id, for the key itself and its tokens without a user. Key ids
    /// hold no `:`, so the two kinds cannot meet.
    pub fn rate_key(&self) -> Cow<'_, str> {
        match &self.user_id {
            Some(user) => Cow::Owned(format!("{}:{user}", self.key_id)),
            None => Cow::Borrowed(&self.key_id),
        }
    }
}

/// What a request may do: everything (authentication is off), or what its
/// principal may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Authentication is off.
    Open,
    /// Authentication is on and the request proved who it is.
    Principal(Principal),
}

/// The owner a new session gets, and the id it is created under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSession {
    /// The id to create it under (`None`: the server picks).
    pub id: Option<SessionId>,
    /// The owning key (`None` with authentication off).
    pub owner_key: Option<String>,
    /// The session's user id.
    pub user_id: Option<String>,
}

impl Access {
    /// The principal, if authentication is on.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Open => None,
            Self::Principal(p) => Some(p),
        }
    }

    /// See [`Principal::rate_key`]; `None` with authentication off.
    pub fn rate_key(&self) -> Option<Cow<'_, str>> {
        self.principal().map(Principal::rate_key)
    }

    /// 403 `forbidden` if a session-scoped credential names another
    /// session. Checked before anything is looked up, so it says nothing
    /// about whether `id` exists.
    pub fn reach(&self, id: SessionId) -> Result<(), ApiError> {
        match self.principal().and_then(|p| p.session_id) {
            Some(scope) if scope != id => Err(ApiError::Forbidden(
                "this token is for another session".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller owns a session with this owner: the same key, and
    /// the same user if the credential is a user's. A session made while
    /// authentication was off has no owner and is reached by no principal.
    pub fn owns(&self, owner_key: Option<&str>, user_id: Option<&str>) -> bool {
        match self.principal() {
            None => true,
            Some(p) => {
                owner_key == Some(p.key_id.as_str())
                    && p.user_id.as_deref().is_none_or(|u| user_id == Some(u))
            }
        }
    }

    /// Lets only the owner at a stored or live session. Anyone else gets
    /// 404 `session_not_found`, the answer for an id that does not exist,
    /// so these endpoints say nothing of another owner's sessions; a
    /// session-scoped credential for another session gets 403 `forbidden`
    /// ([`Access::reach`]). Creating a session under a chosen id that is
    /// taken is still 409 `session_exists` whoever owns it: ids are one
    /// namespace. That confirms only an id the caller already knows, and
    /// ids are random version-4 UUIDs (122 bits), which cannot be guessed.
    pub fn check_owner(&self, record: &SessionRecord) -> Result<(), ApiError> {
        self.reach(record.id)?;
        if self.owns(record.owner_key.as_deref(), record.user_id.as_deref()) {
            Ok(())
        } else {
            Err(ApiError::SessionNotFound)
        }
    }

    /// For a session that lives only as long as its request (`/stream`,
    /// `/convert`): a session-scoped credential is for its session only.
    pub fn anonymous_session(&self) -> Result<(), ApiError> {
        match self.principal().and_then(|p| p.session_id) {
            Some(_) => Err(ApiError::Forbidden(
                "a session-scoped token reaches only its session".into(),
            )),
            None => Ok(()),
        }
    }

    /// Who owns a new recorded session and under which id it is created,
    /// from the client's `session_id` and `user_id` parameters. A
    /// session-scoped credential creates its session (the id defaults to
    /// it; another is 403); a user's credential creates sessions of that
    /// user (another `user_id` is 403); a key sets any `user_id`. A
    /// session-scoped token without a user sets none (403): the key chose
    /// no user for it, and a `user_id` would put the session in that user's
    /// list and reach.
    pub fn new_session(
        &self,
        requested: Option<SessionId>,
        user_id: Option<String>,
    ) -> Result<NewSession, ApiError> {
        let Some(p) = self.principal() else {
            return Ok(NewSession {
                id: requested,
                owner_key: None,
                user_id,
            });
        };
        let id = match (requested, p.session_id) {
            (Some(id), _) => {
                self.reach(id)?;
                Some(id)
            }
            (None, scope) => scope,
        };
        let user_id = match (user_id, &p.user_id) {
            (Some(asked), Some(own)) if asked != *own => {
                return Err(ApiError::Forbidden(
                    "this token is for another user_id".into(),
                ))
            }
            (Some(_), None) if p.session_id.is_some() => {
                return Err(ApiError::Forbidden(
                    "this token is for no user_id; ask for one with the token".into(),
                ))
            }
            (asked, own) => own.clone().or(asked),
        };
        Ok(NewSession {
            id,
            owner_key: Some(p.key_id.clone()),
            user_id,
        })
    }

    /// The filter of a session list: `(owner key, user id)`. A key lists
    /// its own sessions (optionally one user's), a user's token that user's;
    /// a session-scoped token lists nothing (403).
    pub fn list_filter(
        &self,
        user_id: Option<String>,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let Some(p) = self.principal() else {
            return Ok((None, user_id));
        };
        if p.session_id.is_some() {
            return Err(ApiError::Forbidden(
                "a session-scoped token reaches only its session".into(),
            ));
        }
        let user_id = match (user_id, &p.user_id) {
            (Some(asked), Some(own)) if asked != *own => {
                return Err(ApiError::Forbidden(
                    "this token is for another user_id".into(),
                ))
            }
            (asked, own) => own.clone().or(asked),
        };
        Ok((Some(p.key_id.clone()), user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(user: Option<&str>, session: Option<SessionId>) -> Access {
        Access::Principal(Principal {
            key_id: "k1".into(),
            user_id: user.map(Into::into),
            session_id: session,
            via_token: user.is_some() || session.is_some(),
        })
    }

    #[test]
    fn ownership_needs_the_key_and_the_tokens_user() {
        let key = principal(None, None);
        assert!(key.owns(Some("k1"), None));
        assert!(key.owns(Some("k1"), Some("ann")));
        assert!(!key.owns(Some("k2"), None));
        assert!(!key.owns(None, None));
        let ann = principal(Some("ann"), None);
        assert!(ann.owns(Some("k1"), Some("ann")));
        assert!(!ann.owns(Some("k1"), Some("bob")));
        assert!(!ann.owns(Some("k1"), None));
        assert!(Access::Open.owns(None, None));
        assert_eq!(key.rate_key().as_deref(), Some("k1"));
        assert_eq!(ann.rate_key().as_deref(), Some("k1:ann"));
        let scoped = principal(None, Some(SessionId::new_v4()));
        assert_eq!(scoped.rate_key().as_deref(), Some("k1"));
        assert_eq!(Access::Open.rate_key(), None);
    }

    #[test]
    fn a_session_scope_reaches_one_session() {
        let (mine, other) = (SessionId::new_v4(), SessionId::new_v4());
        let scoped = principal(None, Some(mine));
        assert!(scoped.reach(mine).is_ok());
        assert_eq!(scoped.reach(other).unwrap_err().code(), "forbidden");
        assert_eq!(scoped.anonymous_session().unwrap_err().code(), "forbidden");
        assert_eq!(scoped.list_filter(None).unwrap_err().code(), "forbidden");
        let new = scoped.new_session(None, None).unwrap();
        assert_eq!((new.id, new.owner_key.as_deref()), (Some(mine), Some("k1")));
        let e = scoped.new_session(Some(other), None).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        // It cannot hand its session to a user of its choosing.
        let e = scoped.new_session(None, Some("bob".into())).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        let ann_s = principal(Some("ann"), Some(mine));
        let new = ann_s.new_session(None, Some("ann".into())).unwrap();
        assert_eq!(new.user_id.as_deref(), Some("ann"));
    }

    #[test]
    fn a_users_token_acts_for_that_user_only() {
        let ann = principal(Some("ann"), None);
        let new = ann.new_session(None, None).unwrap();
        assert_eq!(new.user_id.as_deref(), Some("ann"));
        let e = ann.new_session(None, Some("bob".into())).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert_eq!(
            ann.list_filter(None).unwrap(),
            (Some("k1".into()), Some("ann".into()))
        );
        assert!(ann.list_filter(Some("bob".into())).is_err());
        let key = principal(None, None);
        assert_eq!(
            key.new_session(None, Some("bob".into())).unwrap().user_id,
            Some("bob".into())
        );
        assert_eq!(Access::Open.list_filter(None).unwrap(), (None, None));
    }
}
