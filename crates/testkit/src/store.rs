//! A store whose writes can be switched off, as a full disk or a Redis out of
//! memory would: reads keep working, every write (save, lease) fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wxgate_gateway::store::{AuditEntry, Credential, Kind, Lease, Store, StoreError};

/// Wraps a store; [`WriteSwitch::refuse_writes`] makes every write fail.
#[derive(Debug)]
pub struct WriteSwitch {
    inner: Arc<dyn Store>,
    refusing: AtomicBool,
}

impl WriteSwitch {
    /// Wraps `inner`, writes accepted.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            refusing: AtomicBool::new(false),
        })
    }

    /// Whether writes fail from now on.
    pub fn refuse_writes(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.refusing.load(Ordering::SeqCst) {
            Err(StoreError("database or disk is full".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for WriteSwitch {
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError> {
        self.inner.load(appid, kind).await
    }

    async fn save(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.save(appid, kind, credential).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.probe_write().await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn topology(&self) -> Option<wxgate_gateway::store::StoreTopology> {
        self.inner.topology().await
    }

    async fn acquire(
        &self,
        appid: &str,
        kind: Kind,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.check()?;
        self.inner.acquire(appid, kind, ttl).await
    }

    async fn tally(&self, key: &str, period: &str, add: u64) -> Result<u64, StoreError> {
        if add > 0 {
            self.check()?;
        }
        self.inner.tally(key, period, add).await
    }

    async fn claim_exchange(
        &self,
        key: &str,
        now: u64,
        hold: std::time::Duration,
    ) -> Result<wxgate_gateway::store::ExchangeClaim, StoreError> {
        self.check()?;
        self.inner.claim_exchange(key, now, hold).await
    }

    async fn answer_exchange(
        &self,
        key: &str,
        answer: &str,
        now: u64,
        until: u64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.answer_exchange(key, answer, now, until).await
    }

    async fn release_exchange(&self, key: &str) -> Result<(), StoreError> {
        self.inner.release_exchange(key).await
    }

    async fn exchanged(&self, key: &str, now: u64) -> Result<Option<String>, StoreError> {
        self.inner.exchanged(key, now).await
    }

    async fn note(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.note(key).await
    }

    async fn set_note(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_note(key, value).await
    }

    async fn set_instance(&self, instance: &str, info: Option<&str>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_instance(instance, info).await
    }

    async fn instances(&self) -> Result<Option<Vec<(String, String)>>, StoreError> {
        self.inner.instances().await
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record(entry).await
    }

    async fn audit(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(appid, limit).await
    }

    async fn release(&self, appid: &str, kind: Kind, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(appid, kind, lease).await
    }
}
