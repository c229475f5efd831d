use actix::Addr;

use super::*;

/// A stand-in for a session's address: the registry needs no session
/// actor to be tested.
#[derive(Debug, Clone, PartialEq)]
struct FakeMember(u32);

impl Member for FakeMember {
    fn idle_timeout(&self, _after_seconds: u64) {}
    fn shutdown(&self) {}
}

fn registry(max_sessions: usize) -> Addr<Registry<FakeMember>> {
    Registry::new(RegistrySettings {
        max_sessions,
        idle_timeout: Duration::from_secs(30),
    })
    .start()
}

#[actix_rt::test]
async fn a_requested_id_is_granted_once_while_its_slot_is_held() {
    let registry = registry(4);
    let id = Uuid::new_v4();
    let admit = || registry.send(AdmitAs { id });
    assert_eq!(admit().await.unwrap(), Ok(id));
    assert_eq!(admit().await.unwrap(), Err(AdmitError::Taken(id)));
    // Other ids, chosen or not, are unaffected.
    let other = registry.send(Admit).await.unwrap();
    assert!(other.is_ok_and(|o| o != id));
    registry.send(Release { id, session: None }).await.unwrap();
    assert_eq!(admit().await.unwrap(), Ok(id));
}

#[actix_rt::test]
async fn a_held_id_is_reported_taken_even_at_the_cap() {
    let registry = registry(1);
    let id = Uuid::new_v4();
    assert_eq!(registry.send(AdmitAs { id }).await.unwrap(), Ok(id));
    let again = registry.send(AdmitAs { id }).await.unwrap();
    assert_eq!(again, Err(AdmitError::Taken(id)));
    let other = registry.send(AdmitAs { id: Uuid::new_v4() }).await.unwrap();
    assert_eq!(other, Err(AdmitError::Full(1)));
    let fresh = registry.send(Admit).await.unwrap();
    assert_eq!(fresh, Err(AdmitError::Full(1)));
}

/// Admits and attaches a stand-in session; its admitting connection
/// stays counted, so a limit of one connection is reached.
async fn live_session(registry: &Addr<Registry<FakeMember>>) -> SessionId {
    let id = registry.send(Admit).await.unwrap().unwrap();
    let attach = Attach {
        id,
        session: FakeMember(1),
        activity: Arc::new(Activity::new()),
    };
    registry.send(attach).await.unwrap();
    id
}

#[actix_rt::test]
async fn a_dropped_leave_guard_counts_its_connection_out() {
    let registry = registry(4);
    let id = live_session(&registry).await;
    let full = registry.send(Join::new(id, 1)).await.unwrap();
    assert_eq!(full, Err(JoinError::TooMany(1)));
    drop(LeaveGuard::new(registry.clone(), id));
    let joined = registry.send(Join::new(id, 1)).await.unwrap();
    assert_eq!(joined, Ok(FakeMember(1)));
}

#[actix_rt::test]
async fn a_disarmed_leave_guard_leaves_the_count_alone() {
    let registry = registry(4);
    let id = live_session(&registry).await;
    LeaveGuard::new(registry.clone(), id).disarm();
    let full = registry.send(Join::new(id, 1)).await.unwrap();
    assert_eq!(full, Err(JoinError::TooMany(1)));
    let held = registry.send(Lookup::new(id)).await.unwrap();
    assert_eq!(held, Some(FakeMember(1)));
}

/// A member that counts the idle timeouts it is told of.
#[derive(Debug, Clone)]
struct IdleWatch {
    id: u32,
    told: Arc<std::sync::atomic::AtomicU64>,
}

impl PartialEq for IdleWatch {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl IdleWatch {
    fn new(id: u32) -> Self {
        Self {
            id,
            told: Arc::default(),
        }
    }

    fn told(&self) -> u64 {
        self.told.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Member for IdleWatch {
    fn idle_timeout(&self, _after_seconds: u64) {
        self.told.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn shutdown(&self) {}
}

/// Moves paused time on by `ms`, one sweep interval at a time, letting
/// the registry run its sweep at each (a message round trip).
async fn advance_ms(registry: &Addr<Registry<IdleWatch>>, ms: u64, each: impl Fn()) {
    for _ in 0..ms / IDLE_SWEEP_INTERVAL_MS {
        tokio::time::advance(Duration::from_millis(IDLE_SWEEP_INTERVAL_MS)).await;
        each();
        registry.send(Snapshot).await.unwrap();
    }
}

/// The idle timeout on paused time: a session that hears nothing for the
/// timeout is told, one that keeps receiving is not; no real second
/// passes.
#[actix_rt::test]
async fn the_idle_sweep_tells_only_a_session_quiet_for_the_timeout() {
    tokio::time::pause();
    let idle_timeout = Duration::from_secs(30);
    let registry = Registry::new(RegistrySettings {
        max_sessions: 4,
        idle_timeout,
    })
    .start();
    let (quiet, busy) = (IdleWatch::new(1), IdleWatch::new(2));
    let busy_activity = Arc::new(Activity::new());
    for (member, activity) in [
        (quiet.clone(), Arc::new(Activity::new())),
        (busy.clone(), Arc::clone(&busy_activity)),
    ] {
        let id = registry.send(Admit).await.unwrap().unwrap();
        let attach = Attach {
            id,
            session: member,
            activity,
        };
        registry.send(attach).await.unwrap();
    }
    let just_under = idle_timeout.as_millis() as u64 - 2 * IDLE_SWEEP_INTERVAL_MS;
    advance_ms(&registry, just_under, || busy_activity.touch()).await;
    assert_eq!((quiet.told(), busy.told()), (0, 0));
    advance_ms(&registry, 4 * IDLE_SWEEP_INTERVAL_MS, || {
        busy_activity.touch()
    })
    .await;
    assert!(quiet.told() >= 1, "the quiet session was not told");
    assert_eq!(busy.told(), 0);
}

/// A slot admitted but never filled (its request was dropped before the
/// session started) is given back after the admission timeout.
#[actix_rt::test]
async fn an_abandoned_admission_is_released_after_its_timeout() {
    tokio::time::pause();
    let registry = Registry::<IdleWatch>::new(RegistrySettings {
        max_sessions: 1,
        idle_timeout: Duration::from_secs(30),
    })
    .start();
    registry.send(Admit).await.unwrap().unwrap();
    assert_eq!(
        registry.send(Admit).await.unwrap(),
        Err(AdmitError::Full(1))
    );
    let under = ADMISSION_TIMEOUT_SECONDS * 1000 - 2 * IDLE_SWEEP_INTERVAL_MS;
    advance_ms(&registry, under, || {}).await;
    assert_eq!(
        registry.send(Admit).await.unwrap(),
        Err(AdmitError::Full(1))
    );
    advance_ms(&registry, 4 * IDLE_SWEEP_INTERVAL_MS, || {}).await;
    assert!(registry.send(Admit).await.unwrap().is_ok());
}
