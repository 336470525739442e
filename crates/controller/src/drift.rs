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

use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

fn hash(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
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

/// What was last applied of one object: its uid (hashed) and generation.
type Seen = (u64, Option<i64>);

/// Per owner (a tenant, an instance): object → what was last applied.
#[derive(Default)]
pub struct Drift {
    seen: Mutex<HashMap<u64, HashMap<u64, Seen>>>,
}

impl Drift {
    /// Records an object as applied for `owner`; says what was repaired, if anything.
    pub fn applied<K: Resource<DynamicType = ()>>(&self, owner: &str, obj: &K) -> Option<Repair> {
        let kind = K::kind(&());
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let key = hash(&[&kind, &ns, &name]);
        let uid = hash(&[obj.uid().as_deref().unwrap_or_default()]);
        let generation = obj.meta().generation;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen.entry(hash(&[owner])).or_default().insert(key, (uid, generation))?;
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
    fn owners_are_separate_and_forgotten() {
        let d = Drift::default();
        d.applied("t", &pol("a", 1));
        assert_eq!(d.applied("u", &pol("b", 1)), None);
        d.forget("t");
        assert_eq!(d.applied("t", &pol("c", 1)), None);
    }
}
