//! `flacstream migrate`: moves a single-node install (SQLite + files in the
//! data directory) into scaled mode (PostgreSQL + object storage).
//!
//! Run it with the single node stopped. Every session in the SQLite
//! catalog is copied: a session the node left `live` (it was killed) is
//! first repaired and finalized from its own frames, exactly as a restart
//! would; each recording is uploaded as its final FLAC object
//! (`recordings/{id}.flac`, multipart, read in parts) and its row saved in
//! PostgreSQL pointing at it; an upload's kept original goes to
//! `originals/{id}`. Then every phrase name (the user/phrase API) is copied.
//! A session already in PostgreSQL as finished is skipped, and phrase names
//! are written over, so the command can be run again after an
//! interruption. The files and the SQLite catalog are left as they were.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::recording::recover;
use flacstream_actors::store::{now_ms, Catalog, SessionStatus};

use crate::catalog::postgres::PostgresCatalog;
use crate::catalog::sqlite::{SqliteCatalog, DATABASE_FILE};
use crate::config::DEFAULT_STORAGE_TIMEOUT_SECONDS;

/// Sessions read from SQLite per page.
const PAGE: u32 = 500;

/// Where from and where to.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The single node's data directory (its catalog and recordings).
    #[arg(long, env = "FLACSTREAM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The PostgreSQL catalog to fill (`postgres://…`).
    #[arg(long, env = "FLACSTREAM_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The object storage to upload the recordings to (`s3://bucket/prefix`).
    #[arg(long, env = "FLACSTREAM_STORAGE_URL")]
    pub storage_url: String,
}

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Sessions copied.
    pub sessions: u64,
    /// Recordings uploaded, and their bytes.
    pub recordings: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Sessions already there.
    pub skipped: u64,
    /// Sessions left live by the node, finalized first.
    pub repaired: u64,
    /// Kept originals uploaded.
    pub originals: u64,
    /// Phrase names copied.
    pub phrases: u64,
}

/// Runs the migration; prints what it did.
pub fn migrate(args: &MigrateArgs) -> ExitCode {
    match run(args) {
        Ok(m) => {
            println!(
                "migrated {} sessions ({} recordings, {} bytes; {} repaired first); {} were already there; {} originals, {} phrase names",
                m.sessions, m.recordings, m.bytes, m.repaired, m.skipped, m.originals, m.phrases
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flacstream migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &MigrateArgs) -> Result<Migrated, String> {
    let timeout = Duration::from_secs(DEFAULT_STORAGE_TIMEOUT_SECONDS);
    let sqlite_path = args.data_dir.join(DATABASE_FILE);
    if !sqlite_path.exists() {
        return Err(format!("no catalog at {}", sqlite_path.display()));
    }
    let mut from = SqliteCatalog::open(&sqlite_path).map_err(|e| e.to_string())?;
    let mut to =
        PostgresCatalog::factory(&args.database_url, 1, timeout).map_err(|e| e.to_string())?();
    let objects = crate::storage::open(&args.storage_url, timeout).map_err(|e| e.to_string())?;
    // object_store is async; the catalogs block on runtimes of their own,
    // so the uploads get this one and nothing nests.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut done = Migrated::default();
    let mut offset = 0u64;
    loop {
        let page = from
            .list(None, None, PAGE, offset)
            .map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        for mut record in page {
            let id = record.id;
            let there = to.load(id).map_err(|e| e.to_string())?;
            if there.is_some_and(|r| r.status != SessionStatus::Live) {
                done.skipped += 1;
                continue;
            }
            let file = record
                .file
                .as_ref()
                .filter(|_| record.record)
                .map(|f| args.data_dir.join(f));
            if record.status == SessionStatus::Live {
                // What a restart of the node would have done.
                record.status = SessionStatus::Closed;
                record.closed_at_ms = Some(now_ms());
                record.error = Some("recovered_after_restart".into());
                if let Some(path) = file.as_ref().filter(|p| p.exists()) {
                    let recovered = recover(path, true).map_err(|e| {
                        format!("session {id}: cannot repair {}: {e}", path.display())
                    })?;
                    record.samples = recovered.info.total_samples;
                }
                done.repaired += 1;
            }
            record.file = None;
            if let Some(path) = file.filter(|p| p.exists()) {
                let key = ObjectRecordings::final_key(id);
                let bytes = runtime
                    .block_on(objects.put_file(&key, &path))
                    .map_err(|e| format!("session {id}: {e}"))?;
                record.file = Some(key);
                done.recordings += 1;
                done.bytes += bytes;
            }
            let original = args.data_dir.join(ObjectRecordings::original_key(id));
            if original.exists() {
                let key = ObjectRecordings::original_key(id);
                let bytes = runtime
                    .block_on(objects.put_file(&key, &original))
                    .map_err(|e| format!("session {id}'s original: {e}"))?;
                done.originals += 1;
                done.bytes += bytes;
            }
            to.save(&record).map_err(|e| format!("session {id}: {e}"))?;
            done.sessions += 1;
        }
    }
    let mut offset = 0u64;
    loop {
        let page = from.every_phrase(PAGE, offset).map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        for (name, id) in page {
            to.bind_phrase(&name, id)
                .map_err(|e| format!("phrase {}/{}: {e}", name.user, name.phrase))?;
            done.phrases += 1;
        }
    }
    Ok(done)
}
