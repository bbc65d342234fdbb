//! The audit log: one entry per upstream credential call, adoption, probe
//! rejection, revocation and quota reset, in the store (see [`crate::store::AuditEntry`]).

use crate::store::{AuditEntry, Kind, StoreError};

use super::cause::Cause;
use super::TokenCenter;
use crate::upstream::Failure;

impl TokenCenter {
    /// Writes one audit entry (a failure to write it is logged, not fatal).
    pub(super) async fn audit(
        &self,
        appid: &str,
        kind: Kind,
        event: &str,
        cause: &Cause,
        failure: Option<&Failure>,
    ) {
        let entry = AuditEntry {
            at: self.now(),
            appid: appid.to_owned(),
            kind: kind.as_str().to_owned(),
            event: event.to_owned(),
            cause: cause.describe(),
            instance: crate::instance_name().to_owned(),
            result: failure.map_or("ok", |f| f.class.as_str()).to_owned(),
            errcode: failure.and_then(|f| f.errcode),
            rid: failure.and_then(|f| f.rid()).map(str::to_owned),
        };
        if let Err(e) = self.inner.store.record(&entry).await {
            tracing::warn!(appid, token.kind = %kind, error = %e, "could not write the audit log");
        }
    }

    /// The audit log, newest first.
    pub async fn audit_log(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.store.audit(appid, limit).await
    }
}
