//! The registry actor: knows every live session, enforces the global session
//! cap and the idle timeout, and drains sessions on shutdown.
//!
//! A transport first [`Admit`]s a session (reserving a slot before any
//! WebSocket upgrade, so a full server answers HTTP 503), or [`AdmitAs`] under
//! the id its client chose (the registry grants each id once), then the session
//! [`Attach`]es itself when it starts and [`Release`]s its slot when it stops.
//! Per-session connection limits and resumable sessions will hang off the
//! same entries.
//!
//! The registry is generic over the handle it keeps for each session (a
//! [`Member`]): it never imports the session actor, the session module
//! imports it. The crate root names the one the service runs,
//! [`crate::Registry`], whose members are `Addr<Session>`.

mod leave_guard;
mod member;

pub use crate::session_id::SessionId;
pub use leave_guard::LeaveGuard;
pub use member::Member;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResponse, ResponseFuture};
use tokio::sync::oneshot;
// tokio's clock, so the sweep's timers can be tested on paused time.
use tokio::time::Instant;
use uuid::Uuid;

use crate::activity::Activity;
use crate::metrics::{GaugeDelta, ACTIVE_STREAMS, CONNECTIONS_ACTIVE, SESSIONS_ACTIVE};

/// How often idle sessions are looked for, in milliseconds. The idle timeout
/// is therefore enforced to within this much.
pub const IDLE_SWEEP_INTERVAL_MS: u64 = 500;

/// A reserved slot whose session has not started after this long is freed,
/// in seconds: the request that reserved it was dropped mid-way (the client
/// gave up during the upgrade).
pub const ADMISSION_TIMEOUT_SECONDS: u64 = 10;

/// The registry's limits.
#[derive(Debug, Clone, Copy)]
pub struct RegistrySettings {
    /// Sessions (admitted or live) at most, inclusive.
    pub max_sessions: usize,
    /// A session with no audio for this long is closed.
    pub idle_timeout: Duration,
}

struct Entry<M> {
    /// `None` while admitted but not yet started.
    session: Option<(M, Arc<Activity>)>,
    /// Connections attached (or being attached) to the session.
    connections: usize,
    /// When the slot was reserved.
    admitted: Instant,
}

/// The registry actor; see the module docs.
///
/// Generic over `M`, the handle it keeps for each live session, so that this
/// module depends on the [`Member`] trait instead of on the session actor,
/// which depends on it (its [`Attach`] and [`Release`]); with the session
/// importing the registry and the registry importing the session, neither
/// could be read, tested or changed without the other (the tests below run
/// the registry with a stand-in member). Generic rather than over a boxed
/// trait object so that [`Join`] and [`Lookup`] still answer the session's
/// own handle, which the service sends more messages to, with no downcast:
/// the service uses [`crate::Registry`], this actor over `Addr<Session>`.
pub struct Registry<M> {
    settings: RegistrySettings,
    sessions: HashMap<SessionId, Entry<M>>,
    draining: bool,
    /// The drain's grace period is over: late starters are shut down at once.
    grace_over: bool,
    drained: Vec<oneshot::Sender<()>>,
    gauges: Gauges,
}

/// This registry's share of the session gauges, published at each sweep
/// (so they lag by at most [`IDLE_SWEEP_INTERVAL_MS`]) rather than on every
/// message.
struct Gauges {
    streams: GaugeDelta,
    sessions: GaugeDelta,
    connections: GaugeDelta,
}

impl<M: Member> Registry<M> {
    /// A registry with no sessions.
    pub fn new(settings: RegistrySettings) -> Self {
        Self {
            settings,
            sessions: HashMap::new(),
            draining: false,
            grace_over: false,
            drained: Vec::new(),
            gauges: Gauges {
                streams: GaugeDelta::new(ACTIVE_STREAMS),
                sessions: GaugeDelta::new(SESSIONS_ACTIVE),
                connections: GaugeDelta::new(CONNECTIONS_ACTIVE),
            },
        }
    }

    fn publish_gauges(&mut self) {
        let entries = self.sessions.values();
        let streams = entries.clone().filter(|e| e.session.is_some()).count();
        let connections = entries.map(|e| e.connections).sum();
        self.gauges.streams.set(streams);
        self.gauges.sessions.set(self.sessions.len());
        self.gauges.connections.set(connections);
    }

    fn sweep_idle(&mut self) {
        let abandoned = Duration::from_secs(ADMISSION_TIMEOUT_SECONDS);
        self.sessions
            .retain(|_, e| e.session.is_some() || e.admitted.elapsed() < abandoned);
        self.notify_if_drained();
        self.publish_gauges();
        let limit = self.settings.idle_timeout;
        for (session, activity) in self.sessions.values().filter_map(|e| e.session.as_ref()) {
            if activity.idle_for() >= limit {
                session.idle_timeout(limit.as_secs());
            }
        }
    }

    fn notify_if_drained(&mut self) {
        if self.draining && self.sessions.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// Starts the idle sweep.
impl<M: Member> Actor for Registry<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(IDLE_SWEEP_INTERVAL_MS), |act, _| {
            act.sweep_idle();
        });
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> actix::Running {
        log::info!("Registry stopping with {} sessions.", self.sessions.len());
        actix::Running::Stop
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The global cap is reached.
    #[error("the server is at its limit of {0} concurrent sessions")]
    Full(usize),
    /// The server is shutting down.
    #[error("the server is shutting down and accepts no new streams")]
    Draining,
    /// The requested id belongs to a session that is admitted or live.
    #[error("a session with id {0} already exists")]
    Taken(SessionId),
}

impl<M: Member> Registry<M> {
    /// Reserves a slot as `requested`, or under a new random id.
    fn admit(&mut self, requested: Option<SessionId>) -> Result<SessionId, AdmitError> {
        if self.draining {
            return Err(AdmitError::Draining);
        }
        if let Some(id) = requested.filter(|id| self.sessions.contains_key(id)) {
            return Err(AdmitError::Taken(id));
        }
        if self.sessions.len() >= self.settings.max_sessions {
            return Err(AdmitError::Full(self.settings.max_sessions));
        }
        let id = requested.unwrap_or_else(Uuid::new_v4);
        self.sessions.insert(
            id,
            Entry {
                session: None,
                connections: 1,
                admitted: Instant::now(),
            },
        );
        Ok(id)
    }
}

/// Reserve a slot for a new session under a new random id, counting its
/// first connection.
#[derive(Message)]
#[rtype(result = "Result<SessionId, AdmitError>")]
pub struct Admit;

/// Reserves a slot, or refuses while draining or over the cap.
impl<M: Member> Handler<Admit> for Registry<M> {
    type Result = Result<SessionId, AdmitError>;

    fn handle(&mut self, _msg: Admit, _ctx: &mut Self::Context) -> Self::Result {
        self.admit(None)
    }
}

/// Reserve a slot for a new session under the id its client chose, as
/// [`Admit`] does. The registry is the arbiter between clients choosing the
/// same id: while one holds it (admitted or live), the others are refused.
#[derive(Message)]
#[rtype(result = "Result<SessionId, AdmitError>")]
pub struct AdmitAs {
    /// The id the client chose.
    pub id: SessionId,
}

/// Reserves the slot, or refuses while draining, for an id already held, or
/// over the cap.
impl<M: Member> Handler<AdmitAs> for Registry<M> {
    type Result = Result<SessionId, AdmitError>;

    fn handle(&mut self, msg: AdmitAs, _ctx: &mut Self::Context) -> Self::Result {
        self.admit(Some(msg.id))
    }
}

/// A started session takes its reserved slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach<M> {
    /// The id [`Admit`] returned.
    pub id: SessionId,
    /// The session's handle (its address).
    pub session: M,
    /// Its activity clock, swept for the idle timeout.
    pub activity: Arc<Activity>,
}

/// Fills the reserved slot; a session that was never admitted is stopped.
impl<M: Member> Handler<Attach<M>> for Registry<M> {
    type Result = ();

    fn handle(&mut self, msg: Attach<M>, _ctx: &mut Self::Context) {
        match self.sessions.get_mut(&msg.id) {
            // The slot already holds a session: this one's admission was
            // swept as abandoned and the id granted again meanwhile (a
            // client-chosen id retried while the first open was slow). The
            // registry keeps the first; replacing it would lose track of a
            // live session.
            Some(entry) if entry.session.is_some() => {
                log::warn!(
                    "Session {} attached twice; stopping the second one.",
                    msg.id
                );
                msg.session.shutdown();
            }
            Some(entry) => {
                if self.grace_over {
                    msg.session.shutdown();
                }
                entry.session = Some((msg.session, msg.activity));
            }
            None => {
                log::error!(
                    "Session {} attached without admission; stopping it.",
                    msg.id
                );
                msg.session.shutdown();
            }
        }
    }
}

/// Give a slot back (the session stopped, or its upgrade failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release<M> {
    /// The session whose slot is freed.
    pub id: SessionId,
    /// The session actor giving the slot back, when it is one (`None` from a
    /// request whose session never started). The slot is freed only if it
    /// holds this session or none yet: a session stopped as a duplicate (see
    /// [`Attach`]) must not free the slot of the one the registry kept.
    pub session: Option<M>,
}

/// Frees the slot and completes a drain when the last one goes.
impl<M: Member> Handler<Release<M>> for Registry<M> {
    type Result = ();

    fn handle(&mut self, msg: Release<M>, _ctx: &mut Self::Context) {
        let held_by_another = match (&msg.session, self.sessions.get(&msg.id)) {
            (Some(releasing), Some(entry)) => entry
                .session
                .as_ref()
                .is_some_and(|(held, _)| held != releasing),
            _ => false,
        };
        if held_by_another {
            return;
        }
        self.sessions.remove(&msg.id);
        self.notify_if_drained();
    }
}

/// Stop admitting; let sessions finish for up to `grace`, then shut the rest
/// down (each flushes what it was sent and closes with "going away").
/// Resolves when no session is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long open streams may run on before being told to finish.
    pub grace: Duration,
}

/// Starts draining; see [`Drain`].
impl<M: Member> Handler<Drain> for Registry<M> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        log::info!(
            "Draining {} sessions, grace {:?}.",
            self.sessions.len(),
            msg.grace
        );
        for (session, _) in self.sessions.values().filter_map(|e| e.session.as_ref()) {
            session.drain_started();
        }
        ctx.run_later(msg.grace, |act, _| {
            act.grace_over = true;
            for (session, _) in act.sessions.values().filter_map(|e| e.session.as_ref()) {
                session.shutdown();
            }
        });
        self.notify_if_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Why a connection may not join a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No live session has that id.
    #[error("no live session has this id")]
    NotLive,
    /// The session has its maximum of connections.
    #[error("the session already has its maximum of {0} connections")]
    TooMany(usize),
}

/// Join a live session, counting the connection against its limit; answers
/// the session's handle (`M`, the registry's member type).
pub struct Join<M> {
    /// The session.
    pub id: SessionId,
    /// Connections allowed per session (inclusive).
    pub max_connections: usize,
    /// The handle type answered, which no field carries.
    member: PhantomData<fn() -> M>,
}

impl<M> Join<M> {
    /// Join session `id` if it has fewer than `max_connections` connections.
    pub fn new(id: SessionId, max_connections: usize) -> Self {
        Self {
            id,
            max_connections,
            member: PhantomData,
        }
    }
}

/// Answered with the session's handle, or why the connection may not join.
impl<M: 'static> Message for Join<M> {
    type Result = Result<M, JoinError>;
}

/// Counts the connection, or refuses it.
impl<M: Member> Handler<Join<M>> for Registry<M> {
    type Result = Result<M, JoinError>;

    fn handle(&mut self, msg: Join<M>, _ctx: &mut Self::Context) -> Self::Result {
        let entry = self.sessions.get_mut(&msg.id).ok_or(JoinError::NotLive)?;
        let (session, _) = entry.session.as_ref().ok_or(JoinError::NotLive)?;
        if entry.connections >= msg.max_connections {
            return Err(JoinError::TooMany(msg.max_connections));
        }
        entry.connections += 1;
        Ok(session.clone())
    }
}

/// A connection to a session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The session.
    pub id: SessionId,
}

/// Uncounts the connection.
impl<M: Member> Handler<Leave> for Registry<M> {
    type Result = ();

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            entry.connections = entry.connections.saturating_sub(1);
        }
    }
}

/// Find a live session; answers its handle (`M`, the registry's member type).
pub struct Lookup<M> {
    /// The session.
    pub id: SessionId,
    /// The handle type answered, which no field carries.
    member: PhantomData<fn() -> M>,
}

impl<M> Lookup<M> {
    /// Look session `id` up.
    pub fn new(id: SessionId) -> Self {
        Self {
            id,
            member: PhantomData,
        }
    }
}

/// Answered with the session's handle, `None` unless it is live.
impl<M: 'static> Message for Lookup<M> {
    type Result = Option<M>;
}

/// Answers the session's handle if it is live.
impl<M: Member> Handler<Lookup<M>> for Registry<M> {
    type Result = Option<M>;

    fn handle(&mut self, msg: Lookup<M>, _ctx: &mut Self::Context) -> Self::Result {
        self.sessions
            .get(&msg.id)?
            .session
            .as_ref()
            .map(|(s, _)| s.clone())
    }
}

/// Counts for health checks, tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct RegistrySnapshot {
    /// Sessions admitted or live.
    pub sessions: usize,
    /// Whether the registry is draining.
    pub draining: bool,
}

/// Ask for a [`RegistrySnapshot`].
#[derive(Message)]
#[rtype(result = "RegistrySnapshot")]
pub struct Snapshot;

/// Reports current counts.
impl<M: Member> Handler<Snapshot> for Registry<M> {
    type Result = RegistrySnapshot;

    fn handle(&mut self, _msg: Snapshot, _ctx: &mut Self::Context) -> RegistrySnapshot {
        RegistrySnapshot {
            sessions: self.sessions.len(),
            draining: self.draining,
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
