//! Noticing drift that a reconcile just repaired, so it can be reported (an
//! Event, a log line) instead of silently papered over.
//!
//! After each server-side apply the reconciler hands the returned object to
//! [`Drift::applied`], which remembers its uid and `metadata.generation`.
//! Next time, a different uid means someone deleted the object and the apply
//! re-created it; a generation more than one past the remembered one means
//! someone else changed its spec and the apply put it back (our own change
//! moves it by exactly one). Memory is a few words per object, kept per owner
//! and dropped with it. Nothing is known for objects applied before the
//! process started: the first apply after a restart reports nothing.
//!
//! The same record says when an apply is not needed at all: when it was
//! made with [`Drift::applied_as`], a cached object with the recorded uid and
//! resourceVersion, for the same desired object, is exactly as that apply
//! left it ([`Drift::unchanged`]); any change by anyone moves its
//! resourceVersion. This is how the instance reconciler skips applies with
//! caches that keep only an object's metadata.

use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

fn hash(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

fn state(desired: u64, rv: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (desired, rv).hash(&mut h);
    h.finish().max(1)
}

/// A fingerprint of the object an apply sends.
pub fn fingerprint<K: serde::Serialize>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(obj).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// What an apply repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The object had been deleted.
    Recreated(String),
    /// The object's spec had been changed by someone else.
    Restored(String),
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::Recreated(what) => write!(f, "{what} had been deleted; re-created it"),
            Repair::Restored(what) => write!(f, "{what} had been changed; restored it"),
        }
    }
}

/// What was last applied of one object: its uid (hashed), generation, and
/// (for [`Drift::applied_as`]) the desired object and the resourceVersion the
/// apply left, hashed together (0 when unknown).
type Seen = (u64, Option<i64>, u64);

/// Per owner (a tenant, an instance): object → what was last applied.
#[derive(Default)]
pub struct Drift {
    seen: Mutex<HashMap<u64, HashMap<u64, Seen>>>,
}

impl Drift {
    /// Records an object as applied for `owner`; says what was repaired, if anything.
    pub fn applied<K: Resource<DynamicType = ()>>(&self, owner: &str, obj: &K) -> Option<Repair> {
        self.record(owner, obj, 0)
    }

    /// [`Drift::applied`], remembering that `obj` is what applying the
    /// desired object with fingerprint `desired` left.
    pub fn applied_as<K: Resource<DynamicType = ()>>(&self, owner: &str, obj: &K, desired: u64) -> Option<Repair> {
        let rv = obj.meta().resource_version.as_deref().unwrap_or_default();
        self.record(owner, obj, state(desired, rv))
    }

    /// Whether an object of kind `K` with this uid and resourceVersion is
    /// exactly as applying `desired` last left it (so applying again is a no-op).
    pub fn unchanged<K: Resource<DynamicType = ()>>(
        &self,
        owner: &str,
        (ns, name): (&str, &str),
        (uid, rv): (&str, &str),
        desired: u64,
    ) -> bool {
        let key = hash(&[&K::kind(&()), ns, name]);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&hash(&[owner]))
            .and_then(|m| m.get(&key))
            .is_some_and(|(u, _, st)| *st != 0 && *u == hash(&[uid]) && *st == state(desired, rv))
    }

    fn record<K: Resource<DynamicType = ()>>(&self, owner: &str, obj: &K, applied: u64) -> Option<Repair> {
        let kind = K::kind(&());
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let key = hash(&[&kind, &ns, &name]);
        let uid = hash(&[obj.uid().as_deref().unwrap_or_default()]);
        let generation = obj.meta().generation;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.entry(hash(&[owner])).or_default().insert(key, (uid, generation, applied))?;
        let what = if ns.is_empty() { format!("{kind} {name}") } else { format!("{kind} {ns}/{name}") };
        if before.0 != uid {
            return Some(Repair::Recreated(what));
        }
        match (before.1, generation) {
            (Some(b), Some(g)) if g > b + 1 => Some(Repair::Restored(what)),
            _ => None,
        }
    }

    /// Forgets an owner's objects (it was deleted).
    pub fn forget(&self, owner: &str) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash(&[owner]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    fn pol(uid: &str, generation: i64) -> NetworkPolicy {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "n", "uid": uid,
            "generation": generation}}))
        .unwrap()
    }

    #[test]
    fn first_apply_and_own_changes_are_not_drift() {
        let d = Drift::default();
        assert_eq!(d.applied("t", &pol("a", 1)), None);
        assert_eq!(d.applied("t", &pol("a", 1)), None);
        assert_eq!(d.applied("t", &pol("a", 2)), None, "our own spec change moves the generation by one");
    }

    #[test]
    fn recreation_and_foreign_changes_are_drift() {
        let d = Drift::default();
        d.applied("t", &pol("a", 1));
        assert_eq!(d.applied("t", &pol("b", 1)), Some(Repair::Recreated("NetworkPolicy n/p".into())));
        assert_eq!(d.applied("t", &pol("b", 3)), Some(Repair::Restored("NetworkPolicy n/p".into())));
        assert_eq!(
            Repair::Restored("NetworkPolicy n/p".into()).to_string(),
            "NetworkPolicy n/p had been changed; restored it"
        );
    }

    #[test]
    fn unchanged_only_as_the_apply_left_it() {
        let d = Drift::default();
        let mut p = pol("a", 1);
        p.metadata.resource_version = Some("7".into());
        let at = ("n", "p");
        assert!(!d.unchanged::<NetworkPolicy>("t", at, ("a", "7"), 42), "never applied");
        d.applied_as("t", &p, 42);
        assert!(d.unchanged::<NetworkPolicy>("t", at, ("a", "7"), 42));
        assert!(!d.unchanged::<NetworkPolicy>("t", at, ("a", "8"), 42), "changed since (by anyone)");
        assert!(!d.unchanged::<NetworkPolicy>("t", at, ("b", "7"), 42), "re-created");
        assert!(!d.unchanged::<NetworkPolicy>("t", at, ("a", "7"), 43), "another desired object");
        assert!(!d.unchanged::<NetworkPolicy>("u", at, ("a", "7"), 42), "another owner");
        d.applied("t", &p);
        assert!(!d.unchanged::<NetworkPolicy>("t", at, ("a", "7"), 42), "a plain apply records no state");
    }

    #[test]
    fn owners_are_separate_and_forgotten() {
        let d = Drift::default();
        d.applied("t", &pol("a", 1));
        assert_eq!(d.applied("u", &pol("b", 1)), None);
        d.forget("t");
        assert_eq!(d.applied("t", &pol("c", 1)), None);
    }
}
