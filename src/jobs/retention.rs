//! Retention: recordings, originals and their metadata (chunks, analysis,
//! jobs, phrase names) are deleted once their session ended longer ago than
//! its age: `--key-retention-days` for a key that has one, else
//! `--retention-days`. Each deletion is logged (session, key, when it
//! ended) and counted in the job's result. Deleting what is already gone is
//! not an error, so a run repeated after a crash does the same in effect.

use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::store::{now_ms, Expired, Job, Remove, SessionRecord};

use super::context::{JobContext, JobError};

/// Sessions deleted per catalog query.
const BATCH: u32 = 100;
/// Sessions one run deletes at most; the rest wait for the next run (an
/// interval later), so one run stays short.
const MAX_PER_RUN: usize = 10_000;

/// Runs the job.
pub async fn run(cx: &JobContext, _job: &Job) -> Result<String, JobError> {
    let retention = &cx.settings.retention;
    let now = now_ms();
    let mut deleted = 0usize;
    for (key, age) in &retention.per_key {
        let before = now - age.as_millis() as i64;
        deleted += sweep(
            cx,
            before,
            Some(key.clone()),
            Vec::new(),
            MAX_PER_RUN - deleted,
        )
        .await?;
    }
    if let Some(age) = retention.default {
        let before = now - age.as_millis() as i64;
        let except: Vec<String> = retention.per_key.keys().cloned().collect();
        deleted += sweep(
            cx,
            before,
            None,
            except,
            MAX_PER_RUN.saturating_sub(deleted),
        )
        .await?;
    }
    Ok(format!("deleted {deleted} sessions past their retention"))
}

async fn sweep(
    cx: &JobContext,
    before_ms: i64,
    owner: Option<String>,
    except: Vec<String>,
    budget: usize,
) -> Result<usize, JobError> {
    let mut deleted = 0;
    while deleted < budget {
        let batch = cx
            .store
            .send(Expired {
                before_ms,
                owner: owner.clone(),
                except: except.clone(),
                limit: BATCH.min((budget - deleted) as u32),
            })
            .await??;
        if batch.is_empty() {
            break;
        }
        for record in batch {
            delete(cx, &record).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes one ended session: its original, its recording, its rows.
async fn delete(cx: &JobContext, record: &SessionRecord) -> Result<(), JobError> {
    let id = record.id;
    let original = ObjectRecordings::original_key(id);
    let file = match cx.objects.as_ref() {
        Some(objects) => {
            objects.delete_object(&original).await?;
            objects.delete(id, record.file.as_deref()).await?;
            None
        }
        None => {
            match tokio::fs::remove_file(cx.data_dir.join(&original)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            record.file.as_ref().map(|f| cx.data_dir.join(f))
        }
    };
    cx.store.send(Remove { id, file }).await??;
    log::info!(
        "Retention deleted session {id} (key {}, user {}, ended at {} ms).",
        record.owner_key.as_deref().unwrap_or("-"),
        record.user_id.as_deref().unwrap_or("-"),
        record.closed_at_ms.unwrap_or(0)
    );
    Ok(())
}
