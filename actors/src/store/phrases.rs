//! Named recordings (the user/phrase API): a (user, phrase) pair names one
//! session. The catalog's part of it, and the store messages that call it.

use actix::{Handler, Message, SyncContext};
use uuid::Uuid;

use super::{Store, StoreError};

/// A phrase's name: whose (the API key that owns it, `""` with
/// authentication off, so tenants that share user ids never meet), which
/// user's, and which phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseName {
    /// The owning API key, or `""`.
    pub owner: String,
    /// The user label.
    pub user: String,
    /// The phrase label.
    pub phrase: String,
}

/// Named recordings: a (user, phrase) pair names one session, so a client
/// can store, fetch and replace "user U's phrase P" (the Phonon API) without
/// keeping session ids. Methods block.
pub trait Phrases {
    /// Names session `id` as `name`; answers the session it named before,
    /// if any (the caller deletes that one).
    fn bind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// The session `name` names.
    fn phrase(&mut self, name: &PhraseName) -> Result<Option<Uuid>, StoreError>;
    /// A user's phrases (`owner`'s) and their sessions, by phrase name.
    fn phrases(
        &mut self,
        owner: &str,
        user: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(String, Uuid)>, StoreError>;
    /// Forgets the name if it still names session `id`; whether it did.
    fn unbind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<bool, StoreError>;
}

/// Name a session as a user's phrase; answers the session named before.
#[derive(Message)]
#[rtype(result = "Result<Option<Uuid>, StoreError>")]
pub struct BindPhrase {
    /// The phrase.
    pub name: PhraseName,
    /// The session it names now.
    pub id: Uuid,
}

impl Handler<BindPhrase> for Store {
    type Result = Result<Option<Uuid>, StoreError>;

    fn handle(&mut self, msg: BindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.bind_phrase(&msg.name, msg.id)
    }
}

/// The session a user's phrase names.
#[derive(Message)]
#[rtype(result = "Result<Option<Uuid>, StoreError>")]
pub struct FindPhrase {
    /// The phrase.
    pub name: PhraseName,
}

impl Handler<FindPhrase> for Store {
    type Result = Result<Option<Uuid>, StoreError>;

    fn handle(&mut self, msg: FindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.phrase(&msg.name)
    }
}

/// A user's phrases, by name.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, Uuid)>, StoreError>")]
pub struct ListPhrases {
    /// The owning API key, or `""`.
    pub owner: String,
    /// The user.
    pub user: String,
    /// Page size.
    pub limit: u32,
    /// Entries to skip.
    pub offset: u64,
}

impl Handler<ListPhrases> for Store {
    type Result = Result<Vec<(String, Uuid)>, StoreError>;

    fn handle(&mut self, msg: ListPhrases, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .phrases(&msg.owner, &msg.user, msg.limit, msg.offset)
    }
}

/// Forget a user's phrase if it still names a session; whether it did.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct UnbindPhrase {
    /// The phrase.
    pub name: PhraseName,
    /// The session it must still name (a re-upload may have moved it).
    pub id: Uuid,
}

impl Handler<UnbindPhrase> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: UnbindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.unbind_phrase(&msg.name, msg.id)
    }
}
