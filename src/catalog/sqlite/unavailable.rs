//! The catalog a store thread gets when its connection cannot be opened.

use flacstream_actors::store::{
    Analyses, Catalog, Job, JobAttempt, JobKind, JobOutcome, JobState, Jobs, Leases, NewJob,
    PhraseName, Phrases, SessionRecord, StoreError,
};
use uuid::Uuid;

/// A catalog whose connection could not be opened: every call reports why.
pub struct Unavailable(pub StoreError);

impl Leases for Unavailable {}

impl Analyses for Unavailable {
    fn save_chunks(&mut self, _: Uuid, _: &[(u64, String)]) -> Result<(), StoreError> {
        Err(self.0.clone())
    }
    fn chunk(&mut self, _: Uuid, _: u64) -> Result<Option<String>, StoreError> {
        Err(self.0.clone())
    }
    fn chunks(&mut self, _: Uuid, _: u64, _: u32) -> Result<Vec<String>, StoreError> {
        Err(self.0.clone())
    }
    fn save_analysis(&mut self, _: Uuid, _: i64, _: &str) -> Result<(), StoreError> {
        Err(self.0.clone())
    }
    fn analysis(&mut self, _: Uuid) -> Result<Option<String>, StoreError> {
        Err(self.0.clone())
    }
}

impl Phrases for Unavailable {
    fn bind_phrase(&mut self, _: &PhraseName, _: Uuid) -> Result<Option<Uuid>, StoreError> {
        Err(self.0.clone())
    }
    fn phrase(&mut self, _: &PhraseName) -> Result<Option<Uuid>, StoreError> {
        Err(self.0.clone())
    }
    fn phrases(
        &mut self,
        _: &str,
        _: &str,
        _: u32,
        _: u64,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        Err(self.0.clone())
    }
    fn unbind_phrase(&mut self, _: &PhraseName, _: Uuid) -> Result<bool, StoreError> {
        Err(self.0.clone())
    }
}

impl Jobs for Unavailable {
    fn enqueue(&mut self, _: &[NewJob]) -> Result<u64, StoreError> {
        Err(self.0.clone())
    }
    fn claim_jobs(&mut self, _: &str, _: i64, _: i64, _: u32) -> Result<Vec<Job>, StoreError> {
        Err(self.0.clone())
    }
    fn renew_job(&mut self, _: Uuid, _: &str, _: u32, _: i64) -> Result<bool, StoreError> {
        Err(self.0.clone())
    }
    fn finish_job(&mut self, _: Uuid, _: &str, _: u32, _: &JobOutcome) -> Result<bool, StoreError> {
        Err(self.0.clone())
    }
    fn session_jobs(&mut self, _: Uuid) -> Result<Vec<(Job, Vec<JobAttempt>)>, StoreError> {
        Err(self.0.clone())
    }
    fn job_counts(&mut self) -> Result<Vec<(JobKind, JobState, u64)>, StoreError> {
        Err(self.0.clone())
    }
}

impl Catalog for Unavailable {
    fn save(&mut self, _: &SessionRecord) -> Result<(), StoreError> {
        Err(self.0.clone())
    }
    fn save_ended(&mut self, _: &SessionRecord, _: &[NewJob]) -> Result<(), StoreError> {
        Err(self.0.clone())
    }
    fn load(&mut self, _: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        Err(self.0.clone())
    }
    fn list(
        &mut self,
        _: Option<&str>,
        _: Option<&str>,
        _: u32,
        _: u64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Err(self.0.clone())
    }
    fn remove(&mut self, _: Uuid) -> Result<bool, StoreError> {
        Err(self.0.clone())
    }
    fn unfinished(&mut self) -> Result<Vec<SessionRecord>, StoreError> {
        Err(self.0.clone())
    }
    fn recompressed(&mut self, _: Uuid, _: u8, _: u64) -> Result<bool, StoreError> {
        Err(self.0.clone())
    }
    fn expired(
        &mut self,
        _: i64,
        _: Option<&str>,
        _: &[String],
        _: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Err(self.0.clone())
    }
}
