//! What the registry holds for each live session, and the two things it ever
//! asks of one.

/// A live session's handle, as the registry keeps it.
///
/// The registry holds these, compares them (so a session stopped as a
/// duplicate cannot free the slot of the one it kept) and hands clones back
/// from [`super::Join`] and [`super::Lookup`], but it only ever *tells* a
/// session two things: it has been idle too long, and it must shut down.
/// Those two are this trait, so the registry never imports the session actor
/// (as in actix's websocket chat example, where the server never imports the
/// session): the session module implements it for `Addr<Session>`.
pub trait Member: Clone + PartialEq + Send + Unpin + 'static {
    /// No audio reached the session for `after_seconds` (the registry's idle
    /// timeout).
    fn idle_timeout(&self, after_seconds: u64);

    /// Finish with what was received and close ("going away"): the server is
    /// draining, or the session was started twice under one id or without
    /// admission.
    fn shutdown(&self);

    /// The server started draining: a session that can go on elsewhere (a
    /// recorded session in scaled mode) hands over now rather than wait for
    /// the grace period. Others ignore it.
    fn drain_started(&self) {}
}
