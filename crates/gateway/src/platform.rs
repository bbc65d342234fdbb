//! The Open Platform at run time (families §3): each platform's pushes (the
//! verify ticket every 10 minutes, authorization events), its authorizers
//! (added when they authorize, remembered in the store so a restart costs
//! no call, removed when they revoke), the authorization page, and the one
//! exchange of each authorization code, whether it came by push or by the
//! redirect.
//!
//! The credentials themselves are the token center's, fetched by the
//! families' issuers (`token::platform`): the component token with the
//! ticket, each authorizer's token with the component token and its
//! refresh token, which WeChat may replace with any answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use wxgate_proto::component::authorize::{AuthType, AuthorizePage};
use wxgate_proto::component::TICKET_LIFETIME_SECS;
use wxgate_proto::component::{api, release_check, ComponentInfo, ComponentPush};

use crate::config::ComponentConfig;
use crate::family::{Family, AUTHORIZED_MINI_PROGRAM, AUTHORIZED_OFFICIAL_ACCOUNT};
use crate::message::{Dispatcher, Inbox};
use crate::store::Kind;
use crate::token::owners::{Owner, OwnerId};
use crate::token::platform::REFRESH_TOKEN_LIFETIME_SECS;
use crate::token::{Cause, Requester, TokenCenter, TokenError, Upstream};
use crate::upstream::Failure;

/// How often an instance reads its platforms' authorizers again from the
/// store (another instance may have taken an authorization), seconds.
pub const SYNC_SECS: u64 = 60;

/// Codes remembered after their exchange (a code lives 10 minutes; the push
/// and the redirect bring the same one).
const EXCHANGED_KEEP: usize = 10_000;

/// The platforms of a gateway, and what they know of their authorizers.
#[derive(Debug)]
pub struct Platforms {
    center: TokenCenter,
    upstream: Upstream,
    dispatcher: Arc<Dispatcher>,
    configs: ArcSwap<HashMap<String, Arc<ComponentConfig>>>,
    /// Authorization codes already exchanged: code → authorizer appid.
    exchanged: Mutex<HashMap<String, String>>,
    /// Platforms whose authorizers were looked up at WeChat in this run,
    /// the store having none (see [`Platforms::recover`]).
    recovered: Mutex<std::collections::HashSet<String>>,
}

/// What the store keeps of a platform's authorizers (the note
/// `platform:{component_appid}:authorizers`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    authorizers: BTreeMap<String, StoredAuthorizer>,
    #[serde(default)]
    revoked: BTreeMap<String, u64>,
    /// The family (`official`, `miniprogram`) of each revoked authorizer,
    /// for the lists (`revoked` kept as it was stored before).
    #[serde(default)]
    revoked_families: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAuthorizer {
    /// `official` or `miniprogram`.
    family: String,
    /// When it authorized (last), Unix seconds.
    since: u64,
}

/// An authorizer as the client API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizerStatus {
    /// Its appid.
    pub appid: String,
    /// `official` or `miniprogram`.
    pub family: &'static str,
    /// `authorized` or `revoked`.
    pub state: &'static str,
    /// When it authorized, or revoked, Unix seconds.
    pub since: u64,
}

/// The authorization page for an administrator to open.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizeUrl {
    /// The PC page (componentloginpage).
    pub url: String,
    /// The mobile page (bindcomponent).
    pub mobile_url: String,
    /// The pre-auth code in it.
    pub pre_auth_code: String,
    /// Its lifetime, seconds.
    pub expires_in: u64,
}

/// What an authorization added.
#[derive(Debug, Clone, Serialize)]
pub struct Authorized {
    /// The authorizer.
    pub authorizer_appid: String,
    /// `official` or `miniprogram`.
    pub family: &'static str,
    /// Whether the code had been exchanged before (by the push or the redirect).
    pub already: bool,
}

fn family_named(name: &str) -> &'static Family {
    match name {
        "miniprogram" => &AUTHORIZED_MINI_PROGRAM,
        _ => &AUTHORIZED_OFFICIAL_ACCOUNT,
    }
}

fn note_key(component: &str) -> String {
    format!("platform:{component}:authorizers")
}

impl Platforms {
    /// The platforms `components` of a gateway.
    pub fn new(
        center: TokenCenter,
        upstream: Upstream,
        dispatcher: Arc<Dispatcher>,
        components: &[ComponentConfig],
    ) -> Arc<Self> {
        Arc::new(Self {
            center,
            upstream,
            dispatcher,
            configs: ArcSwap::from_pointee(by_appid(components)),
            exchanged: Mutex::new(HashMap::new()),
            recovered: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The configuration of the platform `component`.
    pub fn config(&self, component: &str) -> Option<Arc<ComponentConfig>> {
        self.configs.load().get(component).cloned()
    }

    /// The configured platforms' appids, sorted.
    pub fn component_appids(&self) -> Vec<String> {
        let mut appids: Vec<String> = self.configs.load().keys().cloned().collect();
        appids.sort();
        appids
    }

    /// Whether any platform is configured.
    pub fn any(&self) -> bool {
        !self.configs.load().is_empty()
    }

    /// Takes a reloaded configuration's platforms: the authorizers of a
    /// platform still there fetch with its new settings and answer pushes
    /// with its new rules; those of a platform gone are removed.
    pub fn reconfigure(&self, components: &[ComponentConfig]) -> Vec<Arc<Inbox>> {
        let new = by_appid(components);
        let old = self.configs.swap(Arc::new(new.clone()));
        for gone in old.keys().filter(|c| !new.contains_key(*c)) {
            for authorizer in self.center.owners().authorizers_of(gone) {
                self.center.remove_owner(&authorizer.key);
            }
        }
        let mut inboxes = Vec::new();
        for config in new.values() {
            for authorizer in self.center.owners().authorizers_of(&config.component_appid) {
                let owner = Owner::authorizer(config.clone(), &authorizer.key, authorizer.family);
                self.center.add_owner(owner);
                inboxes.extend(inbox_of(config, &authorizer.key, authorizer.family));
            }
        }
        inboxes
    }

    /// Reads each platform's authorizers from the store and serves them: at
    /// start (their credentials are in the store too, so nothing is
    /// fetched), then every [`SYNC_SECS`] for what other instances took.
    /// `recover`: when the store holds none, look them up at WeChat (see
    /// [`Platforms::recover`]).
    pub async fn sync(&self, recover: bool) {
        let configs = self.configs.load_full();
        for config in configs.values() {
            let component = &config.component_appid;
            let Some(stored) = self.stored_if_any(component).await else {
                if recover {
                    self.recover(config).await;
                }
                continue;
            };
            for (appid, authorizer) in &stored.authorizers {
                let family = family_named(&authorizer.family);
                match self.center.owners().app_owner(appid) {
                    None => self.serve(config, appid, family),
                    // Served, but its inbox lost to a reload that raced its authorization.
                    Some(o) if o.platform() == Some(component) => {
                        if self.dispatcher.inbox(appid).is_none() {
                            self.dispatcher
                                .add_inboxes(inbox_of(config, appid, o.family));
                        }
                    }
                    // Configured as an app: kept as configured.
                    Some(_) => {}
                }
            }
            for (appid, at) in &stored.revoked {
                // Not one configured as an app, nor another platform's, nor
                // one known revoked already.
                let served = self.center.owners().app_owner(appid);
                let known = served.is_none() && self.center.owners().revoked(appid).is_some();
                if !known && served.is_none_or(|o| o.platform() == Some(component)) {
                    self.stop(component, appid, *at);
                }
            }
        }
    }

    /// Starts the background sync (see [`Platforms::sync`]); the first one
    /// is the gateway's, before it serves (`Gateway::serve`).
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let clock = this.center.clock();
                clock.sleep_until(clock.now() + SYNC_SECS).await;
                this.sync(true).await;
            }
        })
    }

    fn serve(&self, config: &Arc<ComponentConfig>, appid: &str, family: &'static Family) {
        self.center
            .add_owner(Owner::authorizer(config.clone(), appid, family));
        self.dispatcher.add_inboxes(inbox_of(config, appid, family));
    }

    fn stop(&self, component: &str, appid: &str, at: u64) {
        self.center.remove_owner(appid);
        self.center.owners().revoke(appid, component, at);
        self.dispatcher.remove_inbox(appid);
    }

    async fn stored(&self, component: &str) -> Stored {
        self.stored_if_any(component).await.unwrap_or_default()
    }

    /// What the store holds of `component`'s authorizers; `None` when it
    /// holds nothing (never written, or lost: a flushed Redis).
    async fn stored_if_any(&self, component: &str) -> Option<Stored> {
        match self.center.store().note(&note_key(component)).await {
            Ok(Some(json)) => Some(serde_json::from_str(&json).unwrap_or_else(|e| {
                tracing::warn!(component, error = %e, "the stored authorizers are unreadable; starting from none");
                Stored::default()
            })),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(component, error = %e, "could not read the stored authorizers");
                Some(Stored::default())
            }
        }
    }

    /// The store holds no authorizers of the platform (a first start, or a
    /// store that lost them): they are looked up at WeChat
    /// (`api_get_authorizer_list`, with the refresh token of each) and
    /// served again, with no new authorization. Once per run; a failure
    /// (no component token yet) is tried again at the next sync.
    async fn recover(&self, config: &Arc<ComponentConfig>) {
        let component = &config.component_appid;
        if !self.recovered_lock().insert(component.clone()) {
            return;
        }
        match self.recover_from_wechat(config).await {
            Ok(0) => {}
            Ok(found) => tracing::warn!(
                component,
                found,
                "the store had no authorizers: recovered from WeChat's list"
            ),
            Err(e) => {
                tracing::info!(component, error = %e, "authorizers not looked up yet; tried again at the next sync");
                self.recovered_lock().remove(component);
            }
        }
    }

    fn recovered_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.recovered.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn recover_from_wechat(&self, config: &Arc<ComponentConfig>) -> Result<usize, Failure> {
        let component = &config.component_appid;
        let token = (self.center)
            .get(component, Kind::AccessToken, &Requester::Gateway)
            .await
            .map_err(TokenError::into_failure)?;
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let body = serde_json::json!({
                "component_appid": component,
                "offset": offset,
                "count": api::MAX_AUTHORIZER_LIST_COUNT,
            });
            let answer = self
                .upstream
                .component_json(
                    component,
                    api::GET_AUTHORIZER_LIST,
                    Some(&token.value),
                    &body,
                )
                .await?;
            let list: api::AuthorizerList = serde_json::from_value(answer)
                .map_err(|e| Failure::transient(format!("unreadable authorizer list: {e}")))?;
            let page = list.list.len();
            found.extend(
                list.list
                    .into_iter()
                    .filter(|i| !i.refresh_token.is_empty()),
            );
            offset += api::MAX_AUTHORIZER_LIST_COUNT;
            if page == 0 || u64::from(offset) >= list.total_count {
                break;
            }
        }
        let now = self.center.clock().now();
        let mut recovered = Vec::new();
        for item in found {
            let appid = item.authorizer_appid;
            if self.center.owners().app_owner(&appid).is_some() {
                continue;
            }
            let family = self.family_of(component, &token.value, &appid).await;
            let refresh = vec![(
                Kind::RefreshToken,
                item.refresh_token,
                REFRESH_TOKEN_LIFETIME_SECS,
            )];
            let owner = Owner::authorizer(config.clone(), &appid, family);
            self.center
                .add_owner_with(owner, refresh, "recovered")
                .await;
            self.dispatcher
                .add_inboxes(inbox_of(config, &appid, family));
            recovered.push((appid, family));
        }
        let count = recovered.len();
        self.remember(component, |stored| {
            for (appid, family) in recovered {
                stored.authorizers.insert(
                    appid,
                    StoredAuthorizer {
                        family: family.push_name.to_owned(),
                        since: now,
                    },
                );
            }
        })
        .await;
        Ok(count)
    }

    async fn remember(&self, component: &str, change: impl FnOnce(&mut Stored)) {
        let mut stored = self.stored(component).await;
        change(&mut stored);
        let json = serde_json::to_string(&stored).expect("authorizers serialise");
        if let Err(e) = self
            .center
            .store()
            .set_note(&note_key(component), &json)
            .await
        {
            tracing::warn!(component, error = %e, "could not store the authorizers; served from memory");
        }
    }

    /// Handles a push of the platform `component`, already opened: keeps a
    /// verify ticket, takes an authorization, stops a revoked authorizer.
    pub async fn on_push(&self, component: &str, push: ComponentPush) {
        match push.info {
            ComponentInfo::VerifyTicket { ticket } => {
                let cause = Cause::Request(Requester::Push);
                let kept = self
                    .center
                    .accept(
                        component,
                        Kind::VerifyTicket,
                        ticket,
                        TICKET_LIFETIME_SECS,
                        cause,
                    )
                    .await;
                if let Err(e) = kept {
                    tracing::warn!(component, error = %e, "verify ticket not kept");
                }
            }
            ComponentInfo::Authorized(a) | ComponentInfo::UpdateAuthorized(a) => {
                match self.exchange(component, &a.authorization_code).await {
                    Ok(done) => {
                        tracing::info!(component, authorizer = %done.authorizer_appid, "authorized")
                    }
                    Err(e) => {
                        tracing::warn!(component, authorizer = %a.authorizer_appid, error = %e, "authorization not taken")
                    }
                }
            }
            ComponentInfo::Unauthorized { authorizer_appid } => {
                self.unauthorized(component, &authorizer_appid).await;
            }
            ComponentInfo::Unknown { info_type, .. } => {
                tracing::info!(
                    component,
                    info_type,
                    "platform push of a type wxgate does not act on"
                );
            }
        }
    }

    /// Exchanges an authorization code (`api_query_auth`), once: the push
    /// and the redirect bring the same code, and the second gets the first's
    /// authorizer. The authorizer's access and refresh tokens come with the
    /// answer and are stored before it is served.
    pub async fn exchange(&self, component: &str, code: &str) -> Result<Authorized, Failure> {
        let config = self
            .config(component)
            .ok_or_else(|| Failure::transient(format!("no platform {component} is configured")))?;
        if let Some(appid) = self.exchanged_code(code) {
            let family =
                (self.center.owners().app_owner(&appid)).map_or("official", |o| o.family.push_name);
            return Ok(Authorized {
                authorizer_appid: appid,
                family,
                already: true,
            });
        }
        let (info, component_token) = self.query_auth(component, code).await?;
        let appid = info.authorizer_appid.clone();
        if let Some(owner) = self.center.owners().app_owner(&appid) {
            if matches!(owner.id, OwnerId::App(_)) {
                return Err(Failure::transient(format!(
                    "{appid} is configured as an app of its own ([[apps]]): kept as configured, not served through platform {component}"
                )));
            }
        }
        self.remember_code(code, &appid);
        let family = self
            .family_of(component, &component_token.value, &appid)
            .await;
        let mut credentials = Vec::new();
        if let (Some(token), Some(expires_in)) = (&info.authorizer_access_token, info.expires_in) {
            credentials.push((Kind::AccessToken, token.clone(), expires_in));
        }
        if let Some(refresh) = info.authorizer_refresh_token.filter(|r| !r.is_empty()) {
            credentials.push((Kind::RefreshToken, refresh, REFRESH_TOKEN_LIFETIME_SECS));
        }
        let owner = Owner::authorizer(config.clone(), &appid, family);
        self.center
            .add_owner_with(owner, credentials, "authorized")
            .await;
        self.dispatcher
            .add_inboxes(inbox_of(&config, &appid, family));
        let now = self.center.clock().now();
        self.remember(component, |stored| {
            stored.revoked.remove(&appid);
            stored.revoked_families.remove(&appid);
            stored.authorizers.insert(
                appid.clone(),
                StoredAuthorizer {
                    family: family.push_name.to_owned(),
                    since: now,
                },
            );
        })
        .await;
        Ok(Authorized {
            authorizer_appid: appid,
            family: family.push_name,
            already: false,
        })
    }

    /// The third step of WeChat's release test (全网发布, families §3.8):
    /// `code` exchanged (`api_query_auth`) with the platform's component
    /// token from the center, then a customer-service text
    /// `<code>_from_api` sent to `openid` with the authorizer token that
    /// answer carries. The test account is never served as an authorizer:
    /// nothing is kept.
    pub async fn release_check_query_auth(
        &self,
        component: &str,
        code: &str,
        openid: &str,
    ) -> Result<(), Failure> {
        let (info, _) = self.query_auth(component, code).await?;
        let token = (info.authorizer_access_token)
            .ok_or_else(|| Failure::transient("api_query_auth answered no authorizer token"))?;
        let message = release_check::custom_message(openid, code);
        self.upstream
            .send_message(
                &AUTHORIZED_OFFICIAL_ACCOUNT,
                &info.authorizer_appid,
                &token,
                &message,
            )
            .await
    }

    /// Exchanges an authorization code with WeChat (`api_query_auth`, with
    /// the center's component token): what the account granted, and the
    /// component token used.
    async fn query_auth(
        &self,
        component: &str,
        code: &str,
    ) -> Result<(api::AuthorizationInfo, crate::store::Credential), Failure> {
        let component_token = self
            .center
            .get(component, Kind::AccessToken, &Requester::Push)
            .await
            .map_err(TokenError::into_failure)?;
        let body = serde_json::json!({ "component_appid": component, "authorization_code": code });
        let answer = self
            .upstream
            .component_json(
                component,
                api::QUERY_AUTH,
                Some(&component_token.value),
                &body,
            )
            .await?;
        let auth: api::QueryAuth = serde_json::from_value(answer)
            .map_err(|e| Failure::transient(format!("unreadable api_query_auth answer: {e}")))?;
        Ok((auth.authorization_info, component_token))
    }

    /// An authorizer's family: a Mini Program when WeChat's account info
    /// says so, else an Official Account.
    async fn family_of(
        &self,
        component: &str,
        component_token: &str,
        appid: &str,
    ) -> &'static Family {
        let body = serde_json::json!({ "component_appid": component, "authorizer_appid": appid });
        let info = self
            .upstream
            .component_json(
                component,
                api::GET_AUTHORIZER_INFO,
                Some(component_token),
                &body,
            )
            .await;
        match info {
            Ok(info) if !info["authorizer_info"]["MiniProgramInfo"].is_null() => {
                &AUTHORIZED_MINI_PROGRAM
            }
            Ok(_) => &AUTHORIZED_OFFICIAL_ACCOUNT,
            Err(e) => {
                tracing::warn!(component, authorizer = appid, error = %e, "account type unknown; taken as an Official Account");
                &AUTHORIZED_OFFICIAL_ACCOUNT
            }
        }
    }

    fn exchanged_code(&self, code: &str) -> Option<String> {
        let exchanged = self.exchanged.lock().unwrap_or_else(|p| p.into_inner());
        exchanged.get(code).cloned()
    }

    fn remember_code(&self, code: &str, appid: &str) {
        let mut exchanged = self.exchanged.lock().unwrap_or_else(|p| p.into_inner());
        if exchanged.len() >= EXCHANGED_KEEP {
            exchanged.clear();
        }
        exchanged.insert(code.to_owned(), appid.to_owned());
    }

    /// The authorizer `appid` revoked its authorization of `component`: its
    /// credentials stop being served and renewed, and asking for them says why.
    pub async fn unauthorized(&self, component: &str, appid: &str) {
        let now = self.center.clock().now();
        let family = (self.center.owners().app_owner(appid))
            .filter(|o| o.platform() == Some(component))
            .map(|o| o.family.push_name.to_owned());
        if family.is_none() {
            tracing::info!(
                component,
                authorizer = appid,
                "unauthorized: not an authorizer served here"
            );
        }
        self.stop(component, appid, now);
        self.center
            .record_event(appid, Kind::AccessToken, "unauthorized")
            .await;
        self.remember(component, |stored| {
            let was = stored.authorizers.remove(appid).map(|a| a.family);
            if let Some(family) = was.or(family) {
                stored.revoked_families.insert(appid.to_owned(), family);
            }
            stored.revoked.insert(appid.to_owned(), now);
        })
        .await;
        tracing::warn!(
            component,
            authorizer = appid,
            "authorization revoked: its credentials are no longer served"
        );
    }

    /// The authorization page of `component` for an administrator: a fresh
    /// pre-auth code (`api_create_preauthcode`) in WeChat's PC and mobile URLs.
    pub async fn authorize_url(
        &self,
        component: &str,
        redirect_uri: &str,
        auth_type: Option<AuthType>,
        biz_appid: Option<String>,
    ) -> Result<AuthorizeUrl, TokenError> {
        let token = (self.center)
            .get(component, Kind::AccessToken, &Requester::Gateway)
            .await?;
        let body = serde_json::json!({ "component_appid": component });
        let answer = self
            .upstream
            .component_json(
                component,
                api::CREATE_PREAUTHCODE,
                Some(&token.value),
                &body,
            )
            .await
            .map_err(|failure| TokenError::Unavailable {
                failure,
                retry_at: 0,
            })?;
        let code: api::PreAuthCode =
            serde_json::from_value(answer).map_err(|e| TokenError::Unavailable {
                failure: Failure::transient(format!("unreadable pre-auth code: {e}")),
                retry_at: 0,
            })?;
        let page = AuthorizePage {
            component_appid: component,
            pre_auth_code: &code.pre_auth_code,
            redirect_uri,
            auth_type,
            biz_appid: biz_appid.as_deref(),
        };
        Ok(AuthorizeUrl {
            url: page.pc_url(),
            mobile_url: page.mobile_url(),
            pre_auth_code: code.pre_auth_code,
            expires_in: code.expires_in,
        })
    }

    /// The authorizers of `component`, served and revoked.
    pub async fn authorizers(&self, component: &str) -> Vec<AuthorizerStatus> {
        let stored = self.stored(component).await;
        let mut list: Vec<AuthorizerStatus> = (self.center.owners().authorizers_of(component))
            .into_iter()
            .map(|o| AuthorizerStatus {
                family: o.family.push_name,
                state: "authorized",
                since: stored.authorizers.get(&o.key).map_or(0, |a| a.since),
                appid: o.key.clone(),
            })
            .collect();
        list.extend(stored.revoked.iter().map(|(appid, at)| {
            AuthorizerStatus {
                appid: appid.clone(),
                family: (stored.revoked_families.get(appid))
                    .or(stored.authorizers.get(appid).map(|a| &a.family))
                    .map_or("official", |f| family_named(f).push_name),
                state: "revoked",
                since: *at,
            }
        }));
        list
    }
}

fn by_appid(components: &[ComponentConfig]) -> HashMap<String, Arc<ComponentConfig>> {
    (components.iter())
        .map(|c| (c.component_appid.clone(), Arc::new(c.clone())))
        .collect()
}

/// The inbox of the authorizer `appid`: its platform's push settings.
fn inbox_of(config: &ComponentConfig, appid: &str, family: &'static Family) -> Option<Arc<Inbox>> {
    let template = config.inbox.as_ref()?;
    Some(Arc::new(template.for_owner(appid, family)))
}
