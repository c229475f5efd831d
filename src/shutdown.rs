//! Turns SIGTERM and SIGINT into a drain (see [`crate::drain::Stopper::drain`]).

use crate::drain::Stopper;

/// Waits for SIGTERM or SIGINT, then drains. A second signal during the
/// drain is logged and otherwise ignored: the drain is already bounded.
pub async fn drain_on_signal(stopper: Stopper) {
    wait_for_signal().await;
    log::info!("Shutdown signal received.");
    stopper.drain().await;
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            log::warn!("Cannot listen for SIGTERM ({e}); only Ctrl-C will drain.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
