//! The single exchange of a sign-in code: one call to WeChat per code,
//! whoever asks and however often. In this instance concurrent callers share
//! one flight (a `OnceCell` per code, as smithy's expiring cache); across
//! instances the store's claim ([`crate::store::Store::claim_exchange`])
//! lets one call and the others wait for its recorded answer, which every
//! later caller gets for the code's 5 minutes.
//!
//! What is kept is WeChat's answer as it came (the façade hands it back in
//! WeChat's shape), under the SHA-256 of the code; it holds the user's tokens
//! or session key, so it is never logged (its Debug shows its length). The
//! app's secret is only ever in the outgoing query.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wxgate_proto::errcode;

use super::{SignInError, CODE_LIFETIME_SECS};
use crate::clock::Clock;
use crate::family::CodeExchange;
use crate::metrics::{Metrics, SignInLabels};
use crate::store::{ExchangeClaim, Store};
use crate::token::owners::Owner;
use crate::upstream::{Failure, Upstream};

/// How long a claimant may take before another instance may claim the code
/// again (it died): above the upstream timeout.
const HOLD: Duration = Duration::from_secs(15);
/// How often a caller waiting on another instance's exchange looks again.
const POLL: Duration = Duration::from_millis(50);
/// How many times it looks before giving up: past [`HOLD`], so a waiter
/// outlives a dead claimant's hold and takes the code over.
const POLLS: u32 = (HOLD.as_millis() / POLL.as_millis()) as u32 + 40;

/// WeChat's errcodes about the code itself: final, so kept like an answer
/// (a retry would get the same); any other errcode is not kept.
const FINAL_ERRCODES: &[i64] = &[
    errcode::INVALID_CODE,
    errcode::CODE_USED,
    errcode::CODE_BLOCKED,
];

/// WeChat's answer to a code exchange, as it came.
#[derive(Clone)]
pub struct Exchanged {
    /// The JSON text (errcode or not).
    pub answer: String,
    /// Whether it came from an earlier or concurrent exchange of the code.
    pub cached: bool,
}

impl fmt::Debug for Exchanged {
    /// The answer holds the user's tokens or session key: only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchanged")
            .field("answer", &format_args!("<{} bytes>", self.answer.len()))
            .field("cached", &self.cached)
            .finish()
    }
}

type Flight = Arc<OnceCell<Result<Exchanged, SignInError>>>;

/// User sign-in calls to WeChat, each code exchanged once.
pub struct SignIn {
    upstream: Upstream,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Exchanges under way in this instance, by store key. A std Mutex: held
    /// for a map operation, never across an await.
    flights: Mutex<HashMap<String, Flight>>,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn").finish_non_exhaustive()
    }
}

/// Takes a flight out of the map when the call that joined it ends, if it
/// is still the map's (a later flight for the same code is left alone).
struct Landing<'a> {
    signin: &'a SignIn,
    key: &'a str,
    flight: &'a Flight,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flights = self.signin.flights();
        if (flights.get(self.key)).is_some_and(|f| Arc::ptr_eq(f, self.flight)) {
            flights.remove(self.key);
        }
    }
}

/// The store key of something secret: its SHA-256, never the value.
fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

impl SignIn {
    /// Sign-in over `upstream`, kept in `store`, on `clock`.
    pub fn new(
        upstream: Upstream,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            upstream,
            store,
            clock,
            metrics,
            flights: Mutex::default(),
        }
    }

    /// Trades `code` for WeChat's answer with `owner`'s secret, once: a
    /// repeated or concurrent exchange of the same code gets the first one's
    /// answer (for [`CODE_LIFETIME_SECS`]). The exchange runs as a task of
    /// its own: a caller that hangs up does not abandon a code WeChat may
    /// already have spent.
    #[tracing::instrument(skip_all, fields(appid = %owner.key, exchange = exchange.name))]
    pub async fn exchange(
        self: &Arc<Self>,
        owner: &Arc<Owner>,
        exchange: &'static CodeExchange,
        code: &str,
    ) -> Result<Exchanged, SignInError> {
        check_code(exchange, code)?;
        let key = format!("{}:{}:{}", exchange.name, owner.key, digest(code));
        let flight = self.flight(&key);
        // However this call ends (answered, or its caller hung up), the
        // flight leaves the map with it: later callers read the store.
        let _landing = Landing {
            signin: self,
            key: &key,
            flight: &flight,
        };
        let mut led = false;
        let result = flight
            .get_or_init(|| {
                led = true;
                let (this, owner) = (self.clone(), owner.clone());
                let (code, key) = (code.to_owned(), key.clone());
                let task = tokio::spawn(crate::logs::carried(async move {
                    this.exchange_once(&owner, exchange, &code, &key).await
                }));
                async move {
                    task.await.unwrap_or_else(|e| {
                        Err(SignInError::Unavailable(Failure::transient(format!(
                            "the exchange stopped: {e}"
                        ))))
                    })
                }
            })
            .await
            .clone();
        // Who joined another caller's flight got its answer without a call.
        let result = result.map(|e| Exchanged {
            cached: e.cached || !led,
            ..e
        });
        self.count(owner, exchange, &result);
        result
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flight(&self, key: &str) -> Flight {
        self.flights().entry(key.to_owned()).or_default().clone()
    }

    async fn exchange_once(
        &self,
        owner: &Owner,
        exchange: &'static CodeExchange,
        code: &str,
        key: &str,
    ) -> Result<Exchanged, SignInError> {
        for _ in 0..POLLS {
            match self.store.claim_exchange(key, self.clock.now(), HOLD).await {
                Ok(ExchangeClaim::Answered(answer)) => {
                    return Ok(Exchanged {
                        answer,
                        cached: true,
                    })
                }
                Ok(ExchangeClaim::Pending) => tokio::time::sleep(POLL).await,
                Ok(ExchangeClaim::First) => {
                    return self.call(owner, exchange, code, Some(key)).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the store did not answer; exchanging the code without the shared cache");
                    return self.call(owner, exchange, code, None).await;
                }
            }
        }
        Err(SignInError::Pending)
    }

    /// The one call to WeChat; its answer is recorded under `key` when final.
    async fn call(
        &self,
        owner: &Owner,
        exchange: &'static CodeExchange,
        code: &str,
        key: Option<&str>,
    ) -> Result<Exchanged, SignInError> {
        let query = [
            ("appid", owner.key.as_str()),
            ("secret", owner.secret.expose_secret()),
            (exchange.code_param, code),
            ("grant_type", "authorization_code"),
        ];
        let answer = self
            .upstream
            .sns(owner.family, exchange.endpoint, &query)
            .await;
        let now = self.clock.now();
        let errcode = answer.as_deref().ok().map(errcode_of);
        if let Some(key) = key {
            let kept = match (&answer, errcode) {
                (Ok(answer), Some(code)) if code == 0 || FINAL_ERRCODES.contains(&code) => {
                    (self.store)
                        .answer_exchange(key, answer, now, now + CODE_LIFETIME_SECS)
                        .await
                }
                _ => self.store.release_exchange(key).await,
            };
            if let Err(e) = kept {
                tracing::warn!(error = %e, "the store did not keep the exchange's answer; a repeat on another instance will call WeChat");
            }
        }
        let answer = answer.map_err(SignInError::Unavailable)?;
        if errcode == Some(0) {
            self.remember_user_token(owner, &answer).await;
        }
        Ok(Exchanged {
            answer,
            cached: false,
        })
    }

    fn count(
        &self,
        owner: &Owner,
        exchange: &'static CodeExchange,
        result: &Result<Exchanged, SignInError>,
    ) {
        let result = match result {
            Ok(e) if e.cached => "cached",
            Ok(e) if errcode_of(&e.answer) == 0 => "exchanged",
            Ok(_) => "refused",
            Err(_) => "failed",
        };
        tracing::debug!(result, "sign-in code exchange");
        let labels = SignInLabels {
            appid: owner.key.clone(),
            exchange: exchange.name,
            result,
        };
        self.metrics.signin_exchanges.get_or_create(&labels).inc();
    }

    /// `GET /sns/oauth2/refresh_token` for `owner` (no secret): a new user
    /// access token; WeChat's answer as it came.
    pub async fn refresh(
        &self,
        owner: &Owner,
        exchange: &'static CodeExchange,
        refresh_token: &str,
    ) -> Result<String, SignInError> {
        let Some(endpoint) = exchange.refresh else {
            return Err(not_supported(owner, "refresh token"));
        };
        if refresh_token.is_empty() {
            return Err(SignInError::Invalid("refresh_token is missing".into()));
        }
        let query = [
            ("appid", owner.key.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let answer = (self.upstream.sns(owner.family, endpoint, &query).await)
            .map_err(SignInError::Unavailable)?;
        if errcode_of(&answer) == 0 {
            self.remember_user_token(owner, &answer).await;
        }
        Ok(answer)
    }

    /// A call with a user's access token (`/sns/userinfo`, `/sns/auth`):
    /// WeChat's answer as it came.
    pub async fn user_call(
        &self,
        owner: &Owner,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<String, SignInError> {
        (self.upstream.sns(owner.family, endpoint, query).await).map_err(SignInError::Unavailable)
    }

    /// Remembers which app a user access token was handed out for, for its
    /// lifetime, so the façade forwards calls made with it (and no other).
    async fn remember_user_token(&self, owner: &Owner, answer: &str) {
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let Ok(Token {
            access_token: Some(token),
            expires_in,
        }) = serde_json::from_str(answer)
        else {
            return;
        };
        let now = self.clock.now();
        let until = now + expires_in.unwrap_or(7200).min(7200);
        let key = format!("user_token:{}", digest(&token));
        if let Err(e) = (self.store)
            .answer_exchange(&key, &owner.key, now, until)
            .await
        {
            tracing::warn!(error = %e, "the store did not keep a user token's app; the façade will refuse it");
        }
    }

    /// The app a user access token was handed out for through wxgate, if it still lives.
    pub async fn user_token_owner(&self, token: &str) -> Option<String> {
        let key = format!("user_token:{}", digest(token));
        (self.store.exchanged(&key, self.clock.now()).await).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the store did not answer about a user token");
            None
        })
    }
}

/// `owner`'s family lacks `what`.
pub fn not_supported(owner: &Owner, what: &'static str) -> SignInError {
    SignInError::NotSupported {
        owner: owner.key.clone(),
        what,
        why: owner.family.sign_in_lacks,
    }
}

/// A code as WeChat hands them out: printable ASCII, at most 512 bytes.
fn check_code(exchange: &CodeExchange, code: &str) -> Result<(), SignInError> {
    if code.is_empty() || code.len() > 512 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignInError::Invalid(format!(
            "{}: 1 to 512 printable characters, as WeChat handed it out",
            exchange.code_param
        )));
    }
    Ok(())
}

/// The errcode of a JSON answer (0 when it has none).
fn errcode_of(answer: &str) -> i64 {
    #[derive(serde::Deserialize)]
    struct Errcode {
        #[serde(default)]
        errcode: i64,
    }
    serde_json::from_str::<Errcode>(answer).map_or(0, |e| e.errcode)
}
