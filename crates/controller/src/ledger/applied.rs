//! Server-side applies through the ledger: the one way an apply is skipped,
//! and drift an apply repaired told from the reconciler's own changes.
//!
//! After each apply the ledger keeps the returned object's uid,
//! `metadata.generation` and resourceVersion, with a fingerprint of the
//! desired object. An apply is skipped when the cache shows the object with
//! that uid and resourceVersion and the desired object has the same
//! fingerprint (any change by anyone moves the resourceVersion), or, for a
//! cache that keeps whole objects, when the cached object already has every
//! field the apply sets — which also spares the applies of a restart, when
//! the ledger is empty.
//!
//! When an apply is sent, a different uid than last time means someone
//! deleted the object and the apply re-created it; a generation more than
//! one past the last one means someone else changed its spec and the apply
//! put it back (the reconciler's own change moves it by exactly one).
//! Nothing is known of objects applied before the process started: the
//! first apply after a restart reports nothing.

use super::record::{Last, Ledger, hash, key, key_of};
use kube::Resource;
use serde::Serialize;
use serde_json::Value;
use std::hash::{DefaultHasher, Hash, Hasher};

fn state(desired: u64, rv: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (desired, rv).hash(&mut h);
    h.finish()
}

/// A fingerprint of the object an apply sends.
pub fn fingerprint<K: Serialize>(obj: &K) -> u64 {
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

/// What the reconciler's cache shows of an object about to be applied.
pub enum Shown<'a, K> {
    /// Nothing (not cached, or no cache yet).
    Nothing,
    /// Its metadata: uid, resourceVersion, and whether it is being deleted.
    Meta { uid: &'a str, version: &'a str, deleting: bool },
    /// The whole object.
    Whole(&'a K),
}

/// The outcome of [`Ledger::apply`].
pub enum Applied<R> {
    /// The cache shows the object as the apply would leave it: nothing was sent.
    Skipped,
    /// Sent: what the server returned, and the drift it repaired.
    Sent(R, Option<Repair>),
}

impl Ledger {
    /// Applies `desired` for `owner` with `send` (which sends the server-side
    /// apply and returns the answer, whole or its metadata), unless the
    /// cache shows the object as such an apply would leave it. A write sent
    /// is announced, so its watch event is an echo.
    pub async fn apply<K, R, F>(
        &self,
        owner: &str,
        shown: Shown<'_, K>,
        desired: &K,
        send: impl FnOnce() -> F,
    ) -> Result<Applied<R>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Serialize,
        R: Resource<DynamicType = ()>,
        F: std::future::Future<Output = Result<R, kube::Error>>,
    {
        let print = fingerprint(desired);
        if self.unneeded(owner, &shown, desired, print)? {
            return Ok(Applied::Skipped);
        }
        let w = self.writing(desired);
        let answer = send().await?;
        w.wrote(&answer);
        let repair = self.applied(owner, &answer, print);
        Ok(Applied::Sent(answer, repair))
    }

    /// Whether the object `shown` is as applying `desired` (fingerprint
    /// `print`) would leave it.
    fn unneeded<K>(&self, owner: &str, shown: &Shown<'_, K>, desired: &K, print: u64) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let (uid, version, whole) = match shown {
            Shown::Nothing => return Ok(false),
            Shown::Meta { deleting: true, .. } => return Ok(false),
            Shown::Meta { uid, version, .. } => (*uid, *version, None),
            Shown::Whole(o) if o.meta().deletion_timestamp.is_some() => return Ok(false),
            Shown::Whole(o) => {
                let m = o.meta();
                (m.uid.as_deref().unwrap_or_default(), m.resource_version.as_deref().unwrap_or_default(), Some(*o))
            }
        };
        let k = key(desired);
        let last = self.lock().records.get(&k).and_then(|r| r.applied);
        if last.is_some_and(|l| l.uid == hash(uid) && l.state == state(print, version)) {
            return Ok(true);
        }
        let Some(current) = whole else { return Ok(false) };
        let current_value = serde_json::to_value(current).map_err(kube::Error::SerdeError)?;
        let desired_value = stored_form(serde_json::to_value(desired).map_err(kube::Error::SerdeError)?);
        if !covers(&current_value, &desired_value) {
            return Ok(false);
        }
        // As an apply would leave it: the next look takes the short way.
        self.applied(owner, current, print);
        Ok(true)
    }

    /// Records `obj` as applied for `owner` from a desired object with
    /// fingerprint `print`; says what was repaired, if anything.
    pub fn applied<K: Resource<DynamicType = ()>>(&self, owner: &str, obj: &K, print: u64) -> Option<Repair> {
        let m = obj.meta();
        let (ns, name) = (m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default());
        let kind = K::kind(&());
        let k = key_of(&kind, ns, name);
        let now = Last {
            owner: hash(owner),
            uid: hash(m.uid.as_deref().unwrap_or_default()),
            generation: m.generation,
            state: state(print, m.resource_version.as_deref().unwrap_or_default()),
        };
        let mut state = self.lock();
        let before = state.record(k).applied.replace(now);
        if before.is_none_or(|b| b.owner != now.owner) {
            state.owned.entry(now.owner).or_default().push(k);
        }
        let before = before?;
        let what = if ns.is_empty() { format!("{kind} {name}") } else { format!("{kind} {ns}/{name}") };
        if before.uid != now.uid {
            return Some(Repair::Recreated(what));
        }
        match (before.generation, now.generation) {
            (Some(b), Some(g)) if g > b.saturating_add(1) => Some(Repair::Restored(what)),
            _ => None,
        }
    }

    /// Forgets what was applied for `owner` (it was deleted).
    pub fn forget_owner(&self, owner: &str) {
        let owner = hash(owner);
        let mut state = self.lock();
        for k in state.owned.remove(&owner).unwrap_or_default() {
            if let Some(r) = state.records.get_mut(&k)
                && r.applied.is_some_and(|l| l.owner == owner)
            {
                r.applied = None;
                state.tidy(k);
            }
        }
    }
}

/// An object as the API server stores it, as far as a comparison needs: a
/// Secret's write-only `stringData` is merged into `data`, base64-encoded.
fn stored_form(mut v: Value) -> Value {
    if v.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(Value::Object(strings)) = v.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        let data = v.as_object_mut().map(|o| o.entry("data").or_insert_with(|| Value::Object(Default::default())));
        if let Some(Value::Object(data)) = data {
            for (k, s) in strings {
                let bytes = s.as_str().unwrap_or_default().as_bytes().to_vec();
                data.insert(k, serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or(Value::Null));
            }
        }
    }
    v
}

/// Whether `actual` already has every field `desired` sets, with the same
/// value (objects recursively; arrays element by element, same length).
pub fn covers(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => d.iter().all(|(k, dv)| a.get(k).is_some_and(|av| covers(av, dv))),
        (Value::Array(a), Value::Array(d)) => a.len() == d.len() && a.iter().zip(d).all(|(av, dv)| covers(av, dv)),
        (a, d) => a == d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use serde_json::json;

    fn pol(uid: &str, generation: i64) -> NetworkPolicy {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "n", "uid": uid,
            "generation": generation}}))
        .unwrap()
    }

    #[test]
    fn first_apply_and_own_changes_are_not_drift() {
        let d = Ledger::default();
        assert_eq!(d.applied("t", &pol("a", 1), 0), None);
        assert_eq!(d.applied("t", &pol("a", 1), 0), None);
        assert_eq!(d.applied("t", &pol("a", 2), 0), None, "our own spec change moves the generation by one");
    }

    #[test]
    fn recreation_and_foreign_changes_are_drift() {
        let d = Ledger::default();
        d.applied("t", &pol("a", 1), 0);
        assert_eq!(d.applied("t", &pol("b", 1), 0), Some(Repair::Recreated("NetworkPolicy n/p".into())));
        assert_eq!(d.applied("t", &pol("b", 3), 0), Some(Repair::Restored("NetworkPolicy n/p".into())));
        assert_eq!(
            Repair::Restored("NetworkPolicy n/p".into()).to_string(),
            "NetworkPolicy n/p had been changed; restored it"
        );
    }

    fn meta<'a>(uid: &'a str, version: &'a str) -> Shown<'a, NetworkPolicy> {
        Shown::Meta { uid, version, deleting: false }
    }

    #[test]
    fn skipped_only_as_the_apply_left_it() {
        let d = Ledger::default();
        let mut p = pol("a", 1);
        p.metadata.resource_version = Some("7".into());
        let desired = pol("", 0);
        let print = fingerprint(&desired);
        let unneeded = |shown: Shown<'_, NetworkPolicy>, print| d.unneeded("t", &shown, &desired, print).unwrap();
        assert!(!unneeded(meta("a", "7"), print), "never applied");
        d.applied("t", &p, print);
        assert!(unneeded(meta("a", "7"), print));
        assert!(!unneeded(meta("a", "8"), print), "changed since (by anyone)");
        assert!(!unneeded(meta("b", "7"), print), "re-created");
        assert!(!unneeded(meta("a", "7"), print ^ 1), "another desired object");
        assert!(!unneeded(Shown::Meta { uid: "a", version: "7", deleting: true }, print), "being deleted");
        assert!(!unneeded(Shown::Nothing, print), "not cached");
    }

    #[test]
    fn a_whole_cached_object_that_has_every_field_is_not_applied_again() {
        let d = Ledger::default();
        let mut desired = pol("", 0);
        desired.metadata.uid = None;
        desired.metadata.generation = None;
        desired.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
        let mut cached = pol("u", 3);
        cached.metadata.resource_version = Some("9".into());
        cached.metadata.labels = Some([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into());
        let print = fingerprint(&desired);
        assert!(d.unneeded("t", &Shown::Whole(&cached), &desired, print).unwrap());
        assert!(d.unneeded("t", &meta("u", "9"), &desired, print).unwrap(), "recorded: the short way next time");
        cached.metadata.labels = Some([("a".to_string(), "2".to_string())].into());
        cached.metadata.resource_version = Some("10".into());
        assert!(!d.unneeded("t", &Shown::Whole(&cached), &desired, print).unwrap(), "a field differs");
    }

    #[test]
    fn owners_are_separate_and_forgotten() {
        let d = Ledger::default();
        d.applied("t", &pol("a", 1), 0);
        d.forget_owner("u");
        assert_eq!(d.applied("t", &pol("b", 1), 0), Some(Repair::Recreated("NetworkPolicy n/p".into())));
        d.forget_owner("t");
        assert!(d.is_empty());
        assert_eq!(d.applied("t", &pol("c", 1), 0), None);
    }

    #[test]
    fn covered_when_every_desired_field_is_there() {
        let actual = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "uid": "u"},
            "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}, "status": {"phase": "Active"}});
        assert!(covers(&actual, &json!({"metadata": {"name": "a", "labels": {"x": "1"}}})));
        assert!(covers(&actual, &json!({"spec": {"ports": [{"port": 53}]}})));
        assert!(!covers(&actual, &json!({"metadata": {"labels": {"x": "2"}}})), "a changed value");
        assert!(!covers(&actual, &json!({"metadata": {"annotations": {"a": "b"}}})), "a missing field");
        assert!(!covers(&actual, &json!({"spec": {"ports": []}})), "an array of another length");
    }

    #[test]
    fn a_secrets_string_data_compares_as_its_base64_data() {
        let stored = json!({"kind": "Secret", "data": {"a": "aGk=", "b": "eA=="}});
        let desired = stored_form(json!({"kind": "Secret", "stringData": {"a": "hi"}}));
        assert_eq!(desired, json!({"kind": "Secret", "data": {"a": "aGk="}}));
        assert!(covers(&stored, &desired));
        assert!(!covers(&stored, &stored_form(json!({"kind": "Secret", "stringData": {"a": "ho"}}))));
        let other = json!({"kind": "ConfigMap", "stringData": {"a": "hi"}});
        assert_eq!(stored_form(other.clone()), other, "only Secrets have stringData");
    }
}
