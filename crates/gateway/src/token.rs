//! The token center (中控服务器): the one place that fetches and refreshes each
//! app's access_token and tickets, and serves them from memory.
//!
//! - [`center`]: [`TokenCenter`]: single-flight gets, compare-and-refresh,
//!   adoption of what other instances stored; `fetch` the fetch itself under
//!   the lease, with the error policy (backoff, config errors, quota).
//! - [`issuer`]: each family's rules and fetches ([`issuer::Issuer`]); the center knows no family.
//! - [`owners`]: who has credentials (apps, WeCom apps) and each one's issuer.
//! - [`refresh`]: the background task that renews each credential ahead of expiry.
//! - [`revoke`]: revoking a leaked access token.
//! - [`diagnostics`]: rid lookups, the token API's quota, clear_quota behind its monthly guard.
//! - [`probe`]: the background check that notices a token invalidated behind wxgate's back.
//!
//! WeChat's HTTP API itself (the client, failures and what errcodes mean) is
//! [`crate::upstream`].

mod audit;
mod cause;
pub mod center;
pub mod diagnostics;
mod fetch;
pub mod issuer;
mod lease;
pub mod owners;
pub mod platform;
mod policy;
pub mod probe;
pub mod refresh;
pub mod revoke;
mod slot;

pub use crate::upstream::{Failure, FailureClass, FailureRecord, Upstream};
pub use center::{Cause, Requester, SlotStatus, TokenCenter, TokenError};
