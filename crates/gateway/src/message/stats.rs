//! What the dispatcher counts of each app's pushes and webhook, for the
//! status page and its JSON.

use serde::Serialize;

/// Push counts by outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushStats {
    /// Answered by a rule.
    pub rule: u64,
    /// Answered by the webhook in time.
    pub webhook: u64,
    /// The webhook answered late; sent as a customer-service message.
    pub late: u64,
    /// Nothing to say (`success`).
    pub no_reply: u64,
    /// The webhook failed.
    pub webhook_failed: u64,
    /// Retries recognised.
    pub duplicate: u64,
    /// Refused (signature, timestamp, decryption, XML).
    pub rejected: u64,
    /// Opened with the previous token or key (a rotation under way); also
    /// counted by outcome above.
    pub previous_key: u64,
}

/// The webhook's health.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    /// Scheme, host and port only (the path may carry a secret).
    pub target: String,
    /// Calls answered in time.
    pub ok: u64,
    /// Calls that failed or timed out.
    pub failed: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it last failed.
    pub last_failure_at: Option<u64>,
    /// When it last answered in time.
    pub last_ok_at: Option<u64>,
}
