//! Named recordings (the user/phrase API) in SQLite.

use flacstream_actors::store::{PhraseName, Phrases, StoreError};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::{db_error, SqliteCatalog};

impl SqliteCatalog {
    /// Every phrase of every owner and user, in key order (`flacstream
    /// migrate` copies them).
    pub fn every_phrase(
        &mut self,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(PhraseName, Uuid)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT owner_key, user_id, phrase_id, session_id FROM phrases \
                 ORDER BY owner_key, user_id, phrase_id LIMIT ?1 OFFSET ?2",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![limit, offset as i64], |row| {
                Ok((
                    PhraseName {
                        owner: row.get(0)?,
                        user: row.get(1)?,
                        phrase: row.get(2)?,
                    },
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(db_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, id) = row.map_err(db_error)?;
            out.push((name, Uuid::parse_str(&id).map_err(db_error)?));
        }
        Ok(out)
    }
}

impl Phrases for SqliteCatalog {
    fn bind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        // Immediate: the read and the write under one lock, so a progress
        // save on the other store connection cannot make the upgrade fail.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let before: Option<String> = tx
            .query_row(
                "SELECT session_id FROM phrases \
                 WHERE owner_key = ?1 AND user_id = ?2 AND phrase_id = ?3",
                params![name.owner, name.user, name.phrase],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO phrases (owner_key, user_id, phrase_id, session_id) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (owner_key, user_id, phrase_id) \
             DO UPDATE SET session_id = excluded.session_id",
            params![name.owner, name.user, name.phrase, id.to_string()],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(before.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    fn phrase(&mut self, name: &PhraseName) -> Result<Option<Uuid>, StoreError> {
        let id: Option<String> = self
            .conn
            .query_row(
                "SELECT session_id FROM phrases \
                 WHERE owner_key = ?1 AND user_id = ?2 AND phrase_id = ?3",
                params![name.owner, name.user, name.phrase],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)?;
        Ok(id.and_then(|s| Uuid::parse_str(&s).ok()))
    }

    fn phrases(
        &mut self,
        owner: &str,
        user: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT phrase_id, session_id FROM phrases WHERE owner_key = ?1 \
                 AND user_id = ?2 ORDER BY phrase_id LIMIT ?3 OFFSET ?4",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![owner, user, limit, offset as i64], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(db_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (phrase, id) = row.map_err(db_error)?;
            out.push((phrase, Uuid::parse_str(&id).map_err(db_error)?));
        }
        Ok(out)
    }

    fn unbind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM phrases WHERE owner_key = ?1 AND user_id = ?2 AND phrase_id = ?3 \
                 AND session_id = ?4",
                params![name.owner, name.user, name.phrase, id.to_string()],
            )
            .map_err(db_error)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_bind_replace_list_and_unbind_per_owner() {
        let dir = std::env::temp_dir().join(format!("flacstream-phrases-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("p.sqlite3"));
        let mut db = SqliteCatalog::open(&dir.join("p.sqlite3")).unwrap();
        let name = |owner: &str, phrase: &str| PhraseName {
            owner: owner.into(),
            user: "u".into(),
            phrase: phrase.into(),
        };
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(db.bind_phrase(&name("", "hi"), a).unwrap(), None);
        assert_eq!(db.bind_phrase(&name("", "hi"), b).unwrap(), Some(a));
        assert_eq!(db.bind_phrase(&name("k2", "hi"), c).unwrap(), None);
        assert_eq!(db.phrase(&name("", "hi")).unwrap(), Some(b));
        assert_eq!(db.phrase(&name("k2", "hi")).unwrap(), Some(c));
        db.bind_phrase(&name("", "abc"), a).unwrap();
        let listed = db.phrases("", "u", 10, 0).unwrap();
        assert_eq!(listed, vec![("abc".to_string(), a), ("hi".to_string(), b)]);
        assert_eq!(
            db.phrases("", "u", 1, 1).unwrap(),
            vec![("hi".to_string(), b)]
        );
        assert!(
            !db.unbind_phrase(&name("", "hi"), a).unwrap(),
            "names b now"
        );
        assert!(db.unbind_phrase(&name("", "hi"), b).unwrap());
        assert!(!db.unbind_phrase(&name("", "hi"), b).unwrap());
        assert_eq!(db.phrase(&name("k2", "hi")).unwrap(), Some(c));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
