//! One credential's place in the center: the value in memory, the single
//! flight, and its health (failures, backoff, schedule, forced refreshes).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use crate::store::{Credential, Kind};

use crate::upstream::Failure;

/// What the operations surface shows about one credential.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    /// The app.
    pub appid: String,
    /// The credential.
    pub kind: Kind,
    /// Expiry of the credential in memory, if any.
    pub expires_at: Option<u64>,
    /// When the refresher acts next (renewal or retry), if a credential is held.
    pub next_refresh_at: Option<u64>,
    /// The last failure, cleared by a success.
    pub last_failure: Option<Failure>,
    /// When the last failure happened.
    pub last_failure_at: Option<u64>,
    /// Fetches from WeChat by this instance.
    pub fetches: u64,
    /// Fetches from WeChat by this instance since 00:00 Beijing time.
    pub fetches_today: u64,
    /// The credential in memory (for masked display only).
    pub value: Option<String>,
    /// When it was fetched (by whichever instance).
    pub fetched_at: Option<u64>,
    /// Whether this instance holds the refresh lease right now.
    pub lease_held: bool,
    /// WeChat rejected the value in memory and it could not be replaced yet
    /// (the failure says why): it must not be taken for a usable one.
    pub rejected: bool,
}

impl SlotStatus {
    /// A credential of the owner's family nobody has asked for yet: it has no slot.
    pub(super) fn never(appid: &str, kind: Kind) -> Self {
        Self {
            appid: appid.to_owned(),
            kind,
            expires_at: None,
            next_refresh_at: None,
            last_failure: None,
            last_failure_at: None,
            fetches: 0,
            fetches_today: 0,
            value: None,
            fetched_at: None,
            lease_held: false,
            rejected: false,
        }
    }
}

/// An owner's slots, by [`Kind`] (its discriminant).
type KindSlots = [Option<Arc<Slot>>; Kind::ALL.len()];

/// Every credential's slot, by owner and kind. Slots come and go with their
/// owners, and a credential nobody keeps warm gets its slot only when first
/// asked for, so a center of many owners holds little for what is unused.
///
/// Looked up on every credential read: by the owner as a `&str` (no key
/// built), through foldhash (only configured or authorized owners are
/// inserted, so a stranger cannot choose colliding keys), then by kind.
#[derive(Debug, Default)]
pub(super) struct Slots {
    map: RwLock<foldhash::HashMap<String, KindSlots>>,
}

impl Slots {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, foldhash::HashMap<String, KindSlots>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, foldhash::HashMap<String, KindSlots>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot of `owner`'s `kind`, if it has one.
    pub(super) fn get(&self, owner: &str, kind: Kind) -> Option<Arc<Slot>> {
        self.read().get(owner)?[kind as usize].clone()
    }

    /// The slot of `owner`'s `kind`, made by `make` if it has none (`true`
    /// beside it when it was made now).
    pub(super) fn get_or_make(
        &self,
        owner: &str,
        kind: Kind,
        make: impl FnOnce() -> Slot,
    ) -> (Arc<Slot>, bool) {
        if let Some(slot) = self.get(owner, kind) {
            return (slot, false);
        }
        let mut map = self.write();
        let slot = &mut map.entry(owner.to_owned()).or_default()[kind as usize];
        match slot {
            Some(slot) => (slot.clone(), false),
            None => (slot.insert(Arc::new(make())).clone(), true),
        }
    }

    /// Drops every slot of `owner`, stopping their refreshers.
    pub(super) fn remove_owner(&self, owner: &str) {
        let removed = self.write().remove(owner);
        for slot in removed.into_iter().flatten().flatten() {
            slot.stop_refresher();
        }
    }

    /// Every slot, with its owner and kind.
    pub(super) fn all(&self) -> Vec<((String, Kind), Arc<Slot>)> {
        let map = self.read();
        let mut all = Vec::new();
        for (owner, kinds) in map.iter() {
            for (kind, slot) in Kind::ALL.into_iter().zip(kinds) {
                if let Some(slot) = slot {
                    all.push(((owner.clone(), kind), slot.clone()));
                }
            }
        }
        all
    }

    /// Calls `f` with every slot of `kind` and its owner, under the read
    /// lock (no copies: the façade looks a presented token up this way).
    pub(super) fn each_of_kind(&self, kind: Kind, mut f: impl FnMut(&str, &Slot)) {
        for (owner, kinds) in self.read().iter() {
            if let Some(slot) = &kinds[kind as usize] {
                f(owner, slot);
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Health {
    pub(super) last_failure: Option<Failure>,
    pub(super) last_failure_at: u64,
    /// (Beijing day number, fetches that day).
    pub(super) fetches_today: (u64, u64),
    pub(super) failures: u32,
    /// No call to WeChat before this time (backoff, config pause, quota).
    pub(super) not_before: u64,
    pub(super) last_forced: Option<u64>,
    /// (Beijing day number, forced refreshes that day).
    pub(super) forced_today: (u64, u32),
    /// When to renew the current credential (expiry − refresh_ahead − jitter).
    pub(super) refresh_at: u64,
    pub(super) fetches: u64,
    /// A value WeChat rejected (confirmed by a check) that could not be
    /// replaced; cleared when another value is kept.
    pub(super) rejected: Option<String>,
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) current: RwLock<Option<Credential>>,
    /// The value `current` replaced: the façade still accepts it from a caller
    /// until its own expiry, the lifetime wxgate announced when handing it out.
    pub(super) previous: RwLock<Option<Credential>>,
    /// The SHA-256 (hex) of the last value an operator revoked, here or on
    /// another instance: never kept as `previous`.
    pub(super) revoked: RwLock<Option<String>>,
    /// Held while fetching: the single flight.
    pub(super) flight: Arc<tokio::sync::Mutex<()>>,
    /// Set while this instance holds the refresh lease.
    pub(super) leased: std::sync::atomic::AtomicBool,
    /// Kept warm by the refresher: fetched at start and after any failure,
    /// without waiting for a client. Access tokens always, JS-SDK tickets of
    /// apps with `js_domains`, any other credential once someone asked for it.
    pub(super) wanted: std::sync::atomic::AtomicBool,
    pub(super) health: Mutex<Health>,
    /// Set while `health.rejected` is: a cheap test for every request.
    pub(super) rejected: std::sync::atomic::AtomicBool,
    /// The last check of an access token with WeChat, reused briefly; held
    /// while checking, so one check at a time per credential (see `probe`).
    pub(super) checked: tokio::sync::Mutex<Option<super::probe::Checked>>,
    /// Bumped whenever the credential or its schedule changes; wakes the refresher.
    pub(super) generation: tokio::sync::watch::Sender<u64>,
    /// The slot's refresher task, stopped when the slot is dropped from the
    /// center (its owner removed) or the refreshers are.
    pub(super) refresher: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stop_refresher();
    }
}

impl Slot {
    pub(super) fn new(wanted: bool) -> Self {
        Self {
            current: RwLock::new(None),
            previous: RwLock::new(None),
            revoked: RwLock::new(None),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            leased: std::sync::atomic::AtomicBool::new(false),
            wanted: std::sync::atomic::AtomicBool::new(wanted),
            health: Mutex::new(Health::default()),
            rejected: std::sync::atomic::AtomicBool::new(false),
            checked: tokio::sync::Mutex::new(None),
            generation: tokio::sync::watch::Sender::new(0),
            refresher: Mutex::new(None),
        }
    }

    /// Stops the slot's refresher, if one runs.
    pub(super) fn stop_refresher(&self) {
        let task = self
            .refresher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }

    pub(super) fn current(&self) -> Option<Credential> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn valid(&self, now: u64) -> Option<Credential> {
        self.current().filter(|c| c.is_valid(now))
    }

    /// The failure to answer with when `credential` is the value WeChat
    /// rejected and that could not be replaced; `None` otherwise.
    pub(super) fn known_rejected(&self, credential: &Credential) -> Option<Failure> {
        if !self.rejected.load(Ordering::Relaxed) {
            return None;
        }
        let health = self.health();
        match &health.rejected {
            Some(value) if *value == credential.value => health.last_failure.clone(),
            _ => None,
        }
    }

    /// Marks the credential wanted, and wakes the refresher if it was not.
    pub(super) fn want(&self) {
        if !self.wanted.swap(true, Ordering::Relaxed) {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Remembers that the value whose SHA-256 is `sha256` was revoked, and
    /// drops it if it is the previous one.
    pub(super) fn forget_revoked(&self, sha256: &str) {
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = Some(sha256.to_owned());
        let mut previous = self.previous.write().unwrap_or_else(|p| p.into_inner());
        if previous.as_ref().is_some_and(|p| self.is_revoked(&p.value)) {
            *previous = None;
        }
    }

    /// Whether `value` is the last value revoked.
    fn is_revoked(&self, value: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.as_deref().is_some_and(|r| r == token_sha256(value))
    }

    pub(super) fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `token` is this slot's current or previous value, still valid
    /// at `now`: constant-time comparisons, under the read locks, no copy.
    pub(super) fn presents(&self, token: &str, now: u64) -> bool {
        use subtle::ConstantTimeEq;
        let matches = |c: &Option<Credential>| {
            c.as_ref()
                .filter(|c| c.is_valid(now))
                .is_some_and(|c| bool::from(c.value.as_bytes().ct_eq(token.as_bytes())))
        };
        let current = matches(&self.current.read().unwrap_or_else(|p| p.into_inner()));
        let previous = matches(&self.previous.read().unwrap_or_else(|p| p.into_inner()));
        current | previous
    }

    pub(super) fn set(&self, credential: Credential, refresh_at: u64) {
        let replaced = self
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(credential.clone());
        if let Some(old) = replaced.filter(|old| old.value != credential.value) {
            // Checked under the lock that `forget_revoked` takes after
            // recording a revocation: a revoked value never stays previous.
            let mut previous = self.previous.write().unwrap_or_else(|p| p.into_inner());
            *previous = (!self.is_revoked(&old.value)).then_some(old);
        }
        self.health().refresh_at = refresh_at;
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The SHA-256 of a token, hex: how a revocation names it to other instances.
pub(super) fn token_sha256(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_indexed_by_its_discriminant() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}");
        }
    }

    fn credential(value: &str) -> Credential {
        Credential {
            value: value.into(),
            fetched_at: 0,
            expires_at: 7200,
        }
    }

    fn previous(slot: &Slot) -> Option<String> {
        slot.previous
            .read()
            .unwrap()
            .as_ref()
            .map(|c| c.value.clone())
    }

    /// Issue #24 item 10d: another instance's revocation may arrive before or
    /// after this one adopts the replacement; either way the revoked token
    /// is not kept as the previous one, while an ordinary replacement is.
    #[test]
    fn a_revoked_value_never_stays_previous_whatever_the_order() {
        let adopted_first = Slot::new(true);
        adopted_first.set(credential("leaked"), 0);
        adopted_first.set(credential("fresh"), 0);
        assert_eq!(previous(&adopted_first).as_deref(), Some("leaked"));
        adopted_first.forget_revoked(&token_sha256("leaked"));
        assert_eq!(previous(&adopted_first), None);

        let announced_first = Slot::new(true);
        announced_first.set(credential("leaked"), 0);
        announced_first.forget_revoked(&token_sha256("leaked"));
        announced_first.set(credential("fresh"), 0);
        assert_eq!(previous(&announced_first), None);
        // The next ordinary replacement keeps its previous value.
        announced_first.set(credential("next"), 0);
        assert_eq!(previous(&announced_first).as_deref(), Some("fresh"));
    }
}
