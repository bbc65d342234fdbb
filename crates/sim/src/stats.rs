//! Call counters, served by `GET /sim/stats`: what tests read to prove how many
//! upstream calls a gateway made and whether it ever used a dead token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Every call, answered or not.
    pub calls: u64,
    /// Calls answered with a non-zero errcode (injected faults excluded).
    pub errors: u64,
}

/// Counters of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStats {
    /// Per API path (`/cgi-bin/token`…).
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// Classic access tokens issued.
    pub tokens_issued: u64,
    /// Stable access tokens issued (a repeated call returning the same token does not count).
    pub stable_tokens_issued: u64,
    /// jsapi and wx_card tickets issued (WeCom: corp and agent_config tickets).
    pub tickets_issued: u64,
    /// API calls made with an expired, superseded or unknown access token.
    pub invalid_token_calls: u64,
    /// Customer-service messages accepted (WeCom: `message/send` messages).
    pub custom_messages: u64,
    /// Temporary media accepted by `/cgi-bin/media/upload`.
    #[serde(default)]
    pub media_uploads: u64,
    /// Daily quotas reset by `/cgi-bin/clear_quota` or `/cgi-bin/clear_quota/v2`.
    #[serde(default)]
    pub quota_clears: u64,
    /// Authorizer access tokens issued for this account by Open Platform
    /// platforms (`api_query_auth`, `api_authorizer_token`).
    #[serde(default)]
    pub authorizer_tokens_issued: u64,
}

/// Counters of one Open Platform platform (its `/cgi-bin/component/…` calls and pushes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStats {
    /// Per API path (`/cgi-bin/component/api_component_token`…).
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// component_access_tokens issued.
    pub component_tokens_issued: u64,
    /// pre_auth_codes issued.
    pub pre_auth_codes_issued: u64,
    /// Authorizer access tokens issued (`api_query_auth`, `api_authorizer_token`).
    pub authorizer_tokens_issued: u64,
    /// Refresh tokens replaced by a rotation.
    pub refresh_tokens_rotated: u64,
    /// Component API calls made with an expired, superseded or unknown component_access_token.
    pub invalid_token_calls: u64,
    /// component_verify_ticket pushes sent (answered or not).
    pub tickets_pushed: u64,
    /// Pushes of any kind answered `success`.
    pub pushes_acknowledged: u64,
}

impl ComponentStats {
    /// Calls made to `path`.
    pub fn calls(&self, path: &str) -> u64 {
        self.endpoints.get(path).map_or(0, |e| e.calls)
    }
}

impl AppStats {
    /// Calls made to `path`.
    pub fn calls(&self, path: &str) -> u64 {
        self.endpoints.get(path).map_or(0, |e| e.calls)
    }
}

/// Everything `GET /sim/stats` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The virtual time, Unix seconds.
    pub now: u64,
    /// Per appid.
    pub apps: BTreeMap<String, AppStats>,
    /// Calls that named no known account (unknown appid, unknown token).
    pub unattributed: AppStats,
    /// Calls answered by an injected fault instead of the API.
    pub faults_injected: u64,
    /// Every call per API path, injected faults included: what a client really sent.
    pub endpoint_calls: BTreeMap<String, u64>,
    /// Bytes of temporary media stored and not yet expired, over all accounts.
    #[serde(default)]
    pub media_stored_bytes: u64,
    /// Bytes the `endless` fault has produced so far (what clients were sent).
    #[serde(default)]
    pub fault_bytes_sent: u64,
    /// `endless` answers still being written: 0 once every client has hung
    /// up, so `fault_bytes_sent` is final.
    #[serde(default)]
    pub fault_streams_open: u64,
    /// Per WeCom credential, keyed `corpid/name` (name = agentid or the special
    /// secret's name): tokens, tickets, calls, invalid-token uses.
    #[serde(default)]
    pub wecom: BTreeMap<String, AppStats>,
    /// Per Open Platform platform, keyed by component appid. Its authorizers'
    /// own API calls are counted under `apps`, by authorizer appid.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentStats>,
}

impl Stats {
    /// The counters of `appid` (all zero when it made no call).
    pub fn app(&self, appid: &str) -> AppStats {
        self.apps.get(appid).cloned().unwrap_or_default()
    }

    /// The counters of the WeCom credential `corpid/name` (all zero when it made no call).
    pub fn wecom(&self, key: &str) -> AppStats {
        self.wecom.get(key).cloned().unwrap_or_default()
    }

    /// The counters of the platform `component_appid` (all zero when unknown).
    pub fn component(&self, component_appid: &str) -> ComponentStats {
        self.components
            .get(component_appid)
            .cloned()
            .unwrap_or_default()
    }

    /// Every call to `path`, injected faults included.
    pub fn endpoint_calls(&self, path: &str) -> u64 {
        self.endpoint_calls.get(path).copied().unwrap_or(0)
    }

    /// Invalid-token calls over all accounts, attributed or not.
    pub fn invalid_token_calls(&self) -> u64 {
        self.apps
            .values()
            .map(|a| a.invalid_token_calls)
            .sum::<u64>()
            + self
                .wecom
                .values()
                .map(|a| a.invalid_token_calls)
                .sum::<u64>()
            + self.unattributed.invalid_token_calls
    }
}
