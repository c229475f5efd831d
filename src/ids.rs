//! The identifiers a client chooses: a new session's id and the user id a
//! session is listed under, with their limits. A leaf: the endpoints and
//! the token claims ([`crate::auth::token`]) both check them.

use flacstream_actors::registry::SessionId;

use crate::error::ApiError;

/// Longest `user_id` accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Checks an id a client chose for a new session (`session_id` on
/// `/api/ws/audio` and `/upload`): a random (version 4, RFC 9562 variant)
/// UUID written in its canonical form, 36 characters of lowercase hex and
/// hyphens. Anything else is 400 `bad_parameter`; the nil UUID is refused
/// as it is not version 4.
///
/// Why so strict: the id is all it takes to join, listen to, download or
/// delete a session, so it must be unguessable, and a version-4 id is the
/// one kind whose bits say it was meant to be (the server cannot check the
/// randomness itself). And a proxy that routes by session hashes the id's
/// text: one spelling per id keeps the open and later requests on the same
/// key, as the server writes the id in this form everywhere.
pub fn parse_chosen_id(raw: &str) -> Result<SessionId, ApiError> {
    let id = SessionId::parse_str(raw)
        .ok()
        .filter(|id| id.hyphenated().to_string() == raw)
        .ok_or_else(|| {
            ApiError::BadParameter(
                "session_id must be a UUID in lowercase hyphenated form \
                 (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx)"
                    .into(),
            )
        })?;
    if id.get_version() != Some(uuid::Version::Random) {
        return Err(ApiError::BadParameter(format!(
            "session_id must be a random (version 4) UUID, got version {}",
            id.get_version_num()
        )));
    }
    if id.get_variant() != uuid::Variant::RFC4122 {
        return Err(ApiError::BadParameter(
            "session_id must be a random (version 4) UUID of the standard variant: \
             its 17th hex digit is 8, 9, a or b"
                .into(),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match parse_chosen_id(raw) {
            Err(e @ ApiError::BadParameter(_)) => e.to_string(),
            other => panic!("{raw}: expected bad_parameter, got {other:?}"),
        }
    }

    #[test]
    fn a_chosen_id_is_a_canonical_random_uuid() {
        let id = SessionId::new_v4();
        assert_eq!(parse_chosen_id(&id.to_string()).unwrap(), id);
        for raw in [
            "",
            "not-a-uuid",
            // The right id in other spellings: a proxy would hash them apart.
            &id.to_string().to_uppercase(),
            &id.simple().to_string(),
            &id.braced().to_string(),
            &id.urn().to_string(),
            &format!(" {id}"),
        ] {
            assert!(refused(raw).contains("lowercase hyphenated"), "{raw}");
        }
        for raw in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            // Version 1 (time-based) and version 7 (time-ordered).
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "01890a5d-ac96-774b-bcce-b302099a8057",
            // Version 4 bits, but not the RFC variant.
            "89eb4845-6b3f-4d0f-0d67-63006047c756",
        ] {
            assert!(refused(raw).contains("version 4"), "{raw}");
        }
    }
}
