//! The user/phrase names in PostgreSQL: one row per (owner key, user,
//! phrase), pointing at a session.

use flacstream_actors::store::{PhraseName, Phrases, StoreError};
use uuid::Uuid;

use super::{db_error, PostgresCatalog};

impl Phrases for PostgresCatalog {
    fn bind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            // `FOR UPDATE` locks no row that is not there yet: two first
            // binds of one name would both read none, and the session the
            // loser replaced would never be deleted. A lock on the name
            // itself, held to the commit, puts them in line.
            // Length-prefixed, so no two names give one key (and no NUL,
            // which a text parameter cannot carry).
            let key = format!(
                "{}:{}{}:{}{}",
                name.owner.len(),
                name.owner,
                name.user.len(),
                name.user,
                name.phrase
            );
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(db_error)?;
            let before = tx
                .query_opt(
                    "SELECT session_id FROM phrases \
                     WHERE owner_key = $1 AND user_id = $2 AND phrase_id = $3 FOR UPDATE",
                    &[&name.owner, &name.user, &name.phrase],
                )
                .await
                .map_err(db_error)?
                .map(|row| row.get::<_, Uuid>(0));
            tx.execute(
                "INSERT INTO phrases (owner_key, user_id, phrase_id, session_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (owner_key, user_id, phrase_id) \
                 DO UPDATE SET session_id = EXCLUDED.session_id",
                &[&name.owner, &name.user, &name.phrase, &id],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(before)
        })
    }

    fn phrase(&mut self, name: &PhraseName) -> Result<Option<Uuid>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            Ok(client
                .query_opt(
                    "SELECT session_id FROM phrases \
                     WHERE owner_key = $1 AND user_id = $2 AND phrase_id = $3",
                    &[&name.owner, &name.user, &name.phrase],
                )
                .await
                .map_err(db_error)?
                .map(|row| row.get::<_, Uuid>(0)))
        })
    }

    fn phrases(
        &mut self,
        owner: &str,
        user: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    "SELECT phrase_id, session_id FROM phrases WHERE owner_key = $1 \
                     AND user_id = $2 ORDER BY phrase_id LIMIT $3 OFFSET $4",
                    &[&owner, &user, &i64::from(limit), &(offset as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, Uuid>(1)))
                .collect())
        })
    }

    fn unbind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<bool, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let n = client
                .execute(
                    "DELETE FROM phrases WHERE owner_key = $1 AND user_id = $2 \
                     AND phrase_id = $3 AND session_id = $4",
                    &[&name.owner, &name.user, &name.phrase, &id],
                )
                .await
                .map_err(db_error)?;
            Ok(n > 0)
        })
    }
}
