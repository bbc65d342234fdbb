//! Why a credential was fetched or taken up, and who asked: the audit log's `cause`.

use std::sync::Arc;

/// Why a credential was fetched or taken up: the audit log's `cause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The first fetch at start.
    WarmUp,
    /// The renewal ahead of expiry.
    Schedule,
    /// A retry after a failure, by the background task.
    Retry,
    /// A request found no valid credential.
    Request(Requester),
    /// A caller reported the current one rejected (compare-and-refresh).
    CompareAndRefresh(Requester),
    /// WeChat rejected the current access token on a call wxgate forwarded
    /// (40001, 40014, 42001): the proxy's or a late reply's compare-and-refresh.
    Rejected(Requester),
    /// The probe found the current one rejected.
    Probe,
    /// An operator revoked it.
    Admin,
}

/// Who asked for a credential: named in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// A business server with a client key (client API, JS-SDK signing,
    /// `/proxy`), by its `[[clients]] name`.
    Client(Arc<str>),
    /// An SDK on the WeChat-compatible endpoints (it proved the app's secret
    /// or a token wxgate issued).
    Sdk,
    /// A passive reply sent late through the customer-service API.
    Push,
    /// wxgate itself (a ticket fetch needing the access token, the revoke).
    Gateway,
    /// An operator's diagnostics on `/admin` or the CLI.
    Admin,
}

impl Requester {
    fn describe(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Requester::Client(name) => format!("client:{name}").into(),
            Requester::Sdk => "sdk".into(),
            Requester::Push => "push".into(),
            Requester::Gateway => "gateway".into(),
            Requester::Admin => "admin".into(),
        }
    }
}

impl Cause {
    /// `warm_up`, `schedule`, `retry`, `probe`, `admin`, or what a requester
    /// caused: `request:client:NAME`, `compare_and_refresh:sdk`,
    /// `proxy_40001:client:NAME`, `proxy_40001:push`…
    pub fn describe(&self) -> String {
        match self {
            Cause::WarmUp => "warm_up".into(),
            Cause::Schedule => "schedule".into(),
            Cause::Retry => "retry".into(),
            Cause::Request(who) => format!("request:{}", who.describe()),
            Cause::CompareAndRefresh(who) => format!("compare_and_refresh:{}", who.describe()),
            Cause::Rejected(who) => format!("proxy_40001:{}", who.describe()),
            Cause::Probe => "probe".into(),
            Cause::Admin => "admin".into(),
        }
    }

    /// Whoever asked, for a ticket fetch's own access-token needs.
    pub(super) fn requester(&self) -> Requester {
        match self {
            Cause::Request(who) | Cause::CompareAndRefresh(who) | Cause::Rejected(who) => {
                who.clone()
            }
            _ => Requester::Gateway,
        }
    }
}
