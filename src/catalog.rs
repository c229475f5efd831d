//! The session catalog's backends, behind the actors' `Catalog` trait
//! (`flacstream_actors::store::Catalog`): the store actor runs their
//! blocking calls on its own threads.
//!
//! - [`sqlite`]: the embedded default, one SQLite file in the data
//!   directory, with migrations.

pub mod sqlite;
