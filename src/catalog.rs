//! The session catalog's backends, behind the actors' `Catalog` trait
//! (`flacstream_actors::store::Catalog`): the store actor runs their
//! blocking calls on its own threads.
//!
//! - [`sqlite`]: the embedded default, one SQLite file in the data
//!   directory, with migrations.
//! - [`postgres`]: scaled mode, one PostgreSQL database every replica
//!   shares, with the lease rows that say which replica owns each live
//!   session.

pub mod postgres;
pub mod sqlite;
