//! The ledger's records: one per object a reconciler writes (see the
//! module above for what each part is for), their key and their one cap;
//! and an instance cleanup's deletes, the one part small enough to live here.

use kube::Resource;
use std::any::Any;
use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Records kept at most (one per object written and not yet forgotten).
pub const MAX_RECORDS: usize = 262_144;

/// How long a cleanup trusts the deletes it sent before sending them again.
const RESEND_DELETES: Duration = Duration::from_secs(30);

/// A record's key: kind, namespace and name, hashed.
pub(super) type Key = u64;

pub(super) fn hash<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

pub(super) fn key_of(kind: &str, ns: &str, name: &str) -> Key {
    hash(&(kind, ns, name))
}

pub(super) fn key<K: Resource<DynamicType = ()>>(o: &K) -> Key {
    let m = o.meta();
    key_of(&K::kind(&()), m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default())
}

/// A reconciler's own writes, by object.
#[derive(Default)]
pub struct Ledger {
    pub(super) state: Mutex<State>,
    /// Events waiting in all streams for a write to be answered (so that an
    /// answered write wakes the streams only when one of them waits).
    pub(super) held: AtomicUsize,
    /// One per stream from [`Ledger::unechoed`]: told when a write is answered.
    pub(super) streams: Mutex<Vec<futures::channel::mpsc::UnboundedSender<()>>>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) records: HashMap<Key, Record>,
    /// Owner (a tenant, an instance) → the objects applied for it, so that
    /// its records go with it.
    pub(super) owned: HashMap<u64, Vec<Key>>,
}

/// The last write of a primary object.
pub(super) struct Written {
    /// The resourceVersions the chain of writes was made on, oldest first.
    pub(super) bases: Vec<String>,
    /// The resourceVersion the last write returned.
    pub(super) now_version: String,
    /// What the last write returned (an `Arc<K>` of the object's type).
    pub(super) now: Arc<dyn Any + Send + Sync>,
}

/// What the last apply of an object left.
#[derive(Clone, Copy)]
pub(super) struct Last {
    /// The owner it was applied for (hashed).
    pub(super) owner: u64,
    /// Its uid (hashed).
    pub(super) uid: u64,
    pub(super) generation: Option<i64>,
    /// The desired object's fingerprint and the resourceVersion the apply left, hashed together.
    pub(super) state: u64,
}

/// A pool's writes waiting to be seen.
#[derive(Default)]
pub(super) struct Expected {
    /// Pods created, not yet in the cache.
    pub(super) created: HashSet<String>,
    /// Pods deleted, still in the cache without a deletionTimestamp.
    pub(super) deleted: HashSet<String>,
    pub(super) since: Option<Instant>,
}

/// What the reconciler's writes of one object are and did.
#[derive(Default)]
pub(super) struct Record {
    /// The versions its writes returned, oldest first, until the watch delivers them.
    pub(super) echoes: Vec<String>,
    /// Writes sent and not yet answered.
    pub(super) in_flight: u32,
    /// A primary object's last write and the versions its chain was made on.
    pub(super) written: Option<Box<Written>>,
    /// What its last apply left.
    pub(super) applied: Option<Last>,
    /// A pool's writes its cache does not show yet.
    pub(super) expected: Option<Box<Expected>>,
    /// When something was last done for it: an instance cleanup's deletes
    /// sent (with the instance's uid, hashed), a sweep (see [`Ledger::due`]).
    pub(super) done: Option<(u64, Instant)>,
}

impl Record {
    fn is_empty(&self) -> bool {
        self.echoes.is_empty()
            && self.in_flight == 0
            && self.written.is_none()
            && self.applied.is_none()
            && self.expected.is_none()
            && self.done.is_none()
    }
}

impl State {
    /// The record of `k`, made when missing; at the cap, every record
    /// without a write in flight is forgotten first.
    pub(super) fn record(&mut self, k: Key) -> &mut Record {
        if self.records.len() >= MAX_RECORDS && !self.records.contains_key(&k) {
            tracing::debug!(records = self.records.len(), "ledger full; forgetting all but the writes in flight");
            self.records.retain(|_, r| r.in_flight > 0);
            self.owned.clear();
        }
        self.records.entry(k).or_default()
    }

    /// Changes the record of `k`, if there is one, with `f`; drops it when
    /// nothing is left in it.
    pub(super) fn change(&mut self, k: Key, f: impl FnOnce(&mut Record)) {
        if let Some(r) = self.records.get_mut(&k) {
            f(r);
        }
        self.tidy(k);
    }

    /// Drops the record of `k` when nothing is left in it.
    pub(super) fn tidy(&mut self, k: Key) {
        if self.records.get(&k).is_some_and(Record::is_empty) {
            self.records.remove(&k);
            // After a burst the map may be nearly empty: give its table back.
            if self.records.capacity() > 4 * self.records.len().max(1024) {
                self.records.shrink_to(self.records.len().max(1024));
            }
        }
    }
}

impl Ledger {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is a few field updates of one record: a poisoned ledger is consistent enough
        // (at worst one redundant write or reconcile).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this reconciler sent the deletes of `inst`'s objects (its
    /// cleanup) less than a while ago, for this very instance (by uid).
    pub fn deletes_sent<K: Resource<DynamicType = ()>>(&self, inst: &K) -> bool {
        let uid = hash(inst.meta().uid.as_deref().unwrap_or_default());
        let state = self.lock();
        state
            .records
            .get(&key(inst))
            .and_then(|r| r.done)
            .is_some_and(|(u, at)| u == uid && at.elapsed() < RESEND_DELETES)
    }

    /// Notes that the deletes of `inst`'s objects were sent now.
    pub fn sent_deletes<K: Resource<DynamicType = ()>>(&self, inst: &K) {
        let uid = hash(inst.meta().uid.as_deref().unwrap_or_default());
        self.lock().record(key(inst)).done = Some((uid, Instant::now()));
    }

    /// Whether the chore `what` (a sweep, say) for `ns/name` is due: true,
    /// and noted as done now, when it was not done in the last `every`.
    pub fn due(&self, what: &str, (ns, name): (&str, &str), every: Duration) -> bool {
        let k = key_of(what, ns, name);
        let mut state = self.lock();
        let record = state.record(k);
        if record.done.is_some_and(|(_, at)| at.elapsed() < every) {
            return false;
        }
        record.done = Some((0, Instant::now()));
        true
    }

    /// Forgets the cleanup of `inst` (nothing of it is left).
    pub fn cleaned<K: Resource<DynamicType = ()>>(&self, inst: &K) {
        self.lock().change(key(inst), |r| r.done = None);
    }

    /// Forgets what was noted of a primary object (it is gone): its last
    /// write and its cleanup.
    pub fn forget<K: Resource<DynamicType = ()>>(&self, o: &K) {
        self.lock().change(key(o), |r| {
            r.written = None;
            r.done = None;
        });
    }

    /// Records held now (for tests and the bound).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn named(name: &str, uid: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "n", "uid": uid}})).unwrap()
    }

    fn inst(uid: &str) -> ConfigMap {
        named("i", uid)
    }

    #[test]
    fn deletes_are_trusted_for_the_same_instance_until_forgotten() {
        let l = Ledger::default();
        assert!(!l.deletes_sent(&inst("a")));
        l.sent_deletes(&inst("a"));
        assert!(l.deletes_sent(&inst("a")));
        assert!(!l.deletes_sent(&inst("b")), "a new instance of the same name");
        l.forget(&inst("a"));
        assert!(!l.deletes_sent(&inst("a")));
        assert!(l.is_empty(), "an empty record is dropped");
    }

    #[test]
    fn a_chore_is_due_once_per_period() {
        let l = Ledger::default();
        assert!(l.due("Sweep", ("", "ns"), Duration::from_secs(60)));
        assert!(!l.due("Sweep", ("", "ns"), Duration::from_secs(60)), "done just now");
        assert!(l.due("Sweep", ("", "other"), Duration::from_secs(60)), "another namespace");
        assert!(l.due("Sweep", ("", "ns"), Duration::ZERO), "the period is over");
    }

    #[test]
    fn the_cap_keeps_only_writes_in_flight() {
        let l = Ledger::default();
        let w = l.writing(&named("x", "1"));
        {
            let mut s = l.lock();
            let mut i: u64 = 0;
            while s.records.len() < MAX_RECORDS {
                i += 1;
                s.record(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).done = Some((0, Instant::now()));
            }
        }
        l.sent_deletes(&named("new", "2"));
        assert!(l.len() == 2, "all but the write in flight and the new record went: {}", l.len());
        drop(w);
    }
}
