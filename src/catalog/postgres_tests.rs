//! Against a real PostgreSQL (`FLACSTREAM_TEST_DATABASE_URL`, which
//! `.ci/run` provides); skipped, with a line saying so, without it.

use super::*;
use flacstream_actors::store::{now_ms, LeaseClaim};

fn catalog() -> Option<Box<dyn Catalog>> {
    let Ok(url) = std::env::var("FLACSTREAM_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED catalog::postgres tests: FLACSTREAM_TEST_DATABASE_URL is not set");
        return None;
    };
    let factory = PostgresCatalog::factory(&url, 1, Duration::from_secs(10)).unwrap();
    Some(factory())
}

fn live(id: Uuid) -> SessionRecord {
    SessionRecord {
        id,
        user_id: Some("pg-test".into()),
        owner_key: None,
        status: SessionStatus::Live,
        encoding: "s16le".into(),
        sample_rate: Some(16_000),
        channels: Some(1),
        bits_per_sample: Some(16),
        level: 5,
        block_size: Some(4096),
        record: true,
        chunk_count: 3,
        samples: 1000,
        bytes_in: 2000,
        bytes_out: 900,
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
        closed_at_ms: None,
        file: Some(format!("recordings/{id}.flac")),
        error: None,
    }
}

#[test]
fn only_the_lease_holder_can_finish_a_session() {
    let Some(mut c) = catalog() else { return };
    let id = Uuid::new_v4();
    c.save(&live(id)).unwrap();
    assert_eq!(c.claim(id, "a", 60_000).unwrap(), LeaseClaim::Claimed);
    // B cannot take a lease that holds…
    assert!(matches!(
        c.claim(id, "b", 60_000).unwrap(),
        LeaseClaim::HeldBy { ref owner, .. } if owner == "a"
    ));
    // …but takes it once it has run out (A was cut off).
    assert_eq!(c.claim(id, "a", 1).unwrap(), LeaseClaim::Claimed);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(c.claim(id, "b", 60_000).unwrap(), LeaseClaim::Claimed);
    assert_eq!(c.holder(id).unwrap().as_deref(), Some("b"));
    // A, finishing late, must not close B's session.
    let mut closed = live(id);
    closed.status = SessionStatus::Closed;
    closed.closed_at_ms = Some(now_ms());
    assert!(!c.finish_final(&closed, "a", &[]).unwrap());
    assert_eq!(c.load(id).unwrap().unwrap().status, SessionStatus::Live);
    // B may, and its lease goes with it.
    assert!(c.finish_final(&closed, "b", &[]).unwrap());
    assert_eq!(c.load(id).unwrap().unwrap().status, SessionStatus::Closed);
    assert_eq!(c.holder(id).unwrap(), None);
    assert!(
        !c.finish_final(&closed, "b", &[]).unwrap(),
        "a closed session stays closed"
    );
    c.remove(id).unwrap();
}

#[test]
fn renewal_reports_handover_requests_and_orphans_are_claimed_once() {
    let Some(mut c) = catalog() else { return };
    let owner = format!("r-{}", Uuid::new_v4().simple());
    let id = Uuid::new_v4();
    c.save(&live(id)).unwrap();
    c.claim(id, &owner, 60_000).unwrap();
    assert!(c.renew(&owner, 60_000).unwrap().is_empty());
    c.request_handover(id).unwrap();
    assert_eq!(c.renew(&owner, 60_000).unwrap(), vec![id]);
    c.release(id, &owner).unwrap();
    assert_eq!(c.holder(id).unwrap(), None);
    // Unowned and not saved for longer than the grace: an orphan, which
    // one sweeper claims and the next does not.
    let mut old = live(id);
    old.updated_at_ms = now_ms() - 60_000;
    c.save(&old).unwrap();
    let first = c.claim_orphans("s1", 60_000, 1_000, 1_000).unwrap();
    assert!(first.iter().any(|r| r.id == id));
    let second = c.claim_orphans("s2", 60_000, 1_000, 1_000).unwrap();
    assert!(!second.iter().any(|r| r.id == id));
    c.remove(id).unwrap();
}

#[test]
fn replicas_claiming_at_once_never_take_one_job_twice() {
    use flacstream_actors::store::{JobKind, JobOutcome, NewJob};
    let (Some(mut a), Some(b)) = (catalog(), catalog()) else {
        return;
    };
    // All under one session id, so that removing it removes them (the
    // database is shared with other tests' replicas, which would run them).
    let session = Uuid::new_v4();
    let ours: Vec<NewJob> = (0..20)
        .map(|i| {
            NewJob::now(
                JobKind::Webhook,
                format!("pg-test:{session}:{i}"),
                Some(session),
                "{}".into(),
                3,
            )
        })
        .collect();
    assert_eq!(a.enqueue(&ours).unwrap(), 20);
    assert_eq!(
        a.enqueue(&ours).unwrap(),
        0,
        "dedupe keys queue nothing twice"
    );
    let wanted: std::collections::HashSet<Uuid> = ours.iter().map(|j| j.id).collect();
    let claim = |mut c: Box<dyn Catalog>, worker: &'static str| {
        std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let batch = c.claim_jobs(worker, now_ms(), 60_000, 3).unwrap();
                if batch.is_empty() {
                    return (c, got);
                }
                got.extend(batch);
            }
        })
    };
    let (ta, tb) = (claim(a, "replica-a"), claim(b, "replica-b"));
    let ((mut a, got_a), (_b, got_b)) = (ta.join().unwrap(), tb.join().unwrap());
    let ids_a: std::collections::HashSet<Uuid> = got_a.iter().map(|j| j.id).collect();
    let ids_b: std::collections::HashSet<Uuid> = got_b.iter().map(|j| j.id).collect();
    assert!(ids_a.is_disjoint(&ids_b), "a job claimed twice");
    assert!(wanted.is_subset(&ids_a.union(&ids_b).copied().collect()));
    // Only the claimant records an outcome.
    let mine = got_a
        .iter()
        .find(|j| wanted.contains(&j.id))
        .or_else(|| got_b.iter().find(|j| wanted.contains(&j.id)));
    let job = mine.unwrap();
    let (owner, other) = if ids_a.contains(&job.id) {
        ("replica-a", "replica-b")
    } else {
        ("replica-b", "replica-a")
    };
    let done = JobOutcome::Done("ok".into());
    assert!(!a.finish_job(job.id, other, 1, &done).unwrap());
    let log = |c: &mut Box<dyn Catalog>| {
        let jobs = c.session_jobs(session).unwrap();
        let (_, attempts) = jobs.into_iter().find(|(j, _)| j.id == job.id).unwrap();
        attempts[0].outcome.clone()
    };
    assert_eq!(
        log(&mut a),
        None,
        "the other replica's outcome is not logged"
    );
    assert!(a.finish_job(job.id, owner, 1, &done).unwrap());
    assert_eq!(log(&mut a).as_deref(), Some("done"));
    assert!(!a.finish_job(job.id, owner, 1, &done).unwrap(), "once");
    assert_eq!(a.session_jobs(session).unwrap().len(), 20);
    a.remove(session).unwrap();
    assert!(a.session_jobs(session).unwrap().is_empty());
}
