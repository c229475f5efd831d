//! Recovery at start-up: sessions a previous run left live are finalized.

use actix::Addr;
use flacstream_actors::store::{now_ms, SessionStatus, Settle, Store, Unfinished};

/// Finalizes sessions a previous run left live (it crashed or was killed):
/// each recording is repaired from its own frames and closed.
pub(super) async fn recover_unfinished(store: Addr<Store>, data_dir: std::path::PathBuf) {
    let unfinished = match store.send(Unfinished).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return log::error!("Cannot list unfinished sessions: {e}."),
        Err(e) => return log::error!("Cannot list unfinished sessions: {e}."),
    };
    for mut record in unfinished {
        let id = record.id;
        record.status = SessionStatus::Closed;
        record.closed_at_ms = Some(now_ms());
        record.updated_at_ms = now_ms();
        record.error = Some("recovered_after_restart".into());
        let settle = Settle {
            path: record
                .file
                .clone()
                .filter(|_| record.record)
                .map(|f| data_dir.join(f)),
            record,
            file: None,
        };
        match store.send(settle).await {
            Ok(Ok(settled)) => log::info!(
                "Recovered session {id}: {} samples, now {}.",
                settled.samples,
                settled.status.as_str()
            ),
            Ok(Err(e)) => log::error!("Cannot recover session {id}: {e}."),
            Err(e) => log::error!("Cannot recover session {id}: {e}."),
        }
    }
}
