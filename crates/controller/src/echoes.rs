//! Watch events that only echo the controller's own writes.
//!
//! A reconcile writes an object and gets it back with its new
//! resourceVersion; the watch then delivers that very version. Triggering a
//! reconcile for it only re-checks what the reconcile that wrote it has just
//! made so: a new tenant's eight objects, finalizer and status came back as
//! 3.5 reconciles per tenant (`paddock bench tenants`; 2.0 without them),
//! and a new instance's pod, Service, policies, finalizer and status writes
//! as 8.6 reconciles per instance (`paddock bench instances`; 4.0 without
//! them, the rest being its pods' progress). An echo still goes into the
//! watch cache; only its trigger is dropped. Any other version (someone
//! else's change, a deletion, a newer write) triggers as before, so drift is
//! repaired as before.
//!
//! (Upstream's ReplicaSet controller keeps "expectations" of its own creates
//! and deletes for the same reason.)

use futures::{Stream, TryStreamExt};
use kube::Resource;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept at most; one per object the controller wrote and has not yet
/// seen come back. A full map is emptied, which only costs a few redundant
/// reconciles.
const MAX_ENTRIES: usize = 65_536;

/// (kind, namespace, name).
type Key = (Cow<'static, str>, String, String);

/// The versions the controller's own writes returned, until the watch delivers them.
#[derive(Default)]
pub struct Echoes {
    pending: Mutex<HashMap<Key, String>>,
}

fn key<K: Resource<DynamicType = ()>>(o: &K) -> Key {
    let m = o.meta();
    (K::kind(&()), m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

impl Echoes {
    /// Notes what a write returned: the watch event of this version is its echo.
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, o: &K) {
        let Some(rv) = o.meta().resource_version.clone() else { return };
        let mut pending = self.lock();
        if pending.len() >= MAX_ENTRIES {
            pending.clear();
        }
        pending.insert(key(o), rv);
    }

    /// Whether a watched object is the echo of a noted write (the note is then spent).
    pub fn is_echo<K: Resource<DynamicType = ()>>(&self, o: &K) -> bool {
        let Some(rv) = o.meta().resource_version.as_deref() else { return false };
        let mut pending = self.lock();
        // Most events are not echoes, and most of the time none is pending.
        if pending.is_empty() {
            return false;
        }
        let k = key(o);
        match pending.get(&k) {
            Some(noted) if noted == rv => {
                pending.remove(&k);
                // After a burst the map is empty again: give its table back.
                if pending.is_empty() && pending.capacity() > 1024 {
                    pending.shrink_to(1024);
                }
                true
            }
            _ => false,
        }
    }

    /// `events` without the echoes of noted writes.
    pub fn unechoed<K, E, S>(self: &Arc<Self>, events: S) -> impl Stream<Item = Result<K, E>> + Send + use<K, E, S>
    where
        K: Resource<DynamicType = ()> + Send + 'static,
        E: Send + 'static,
        S: Stream<Item = Result<K, E>> + Send + 'static,
    {
        let me = self.clone();
        events.try_filter(move |o| std::future::ready(!me.is_echo(o)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, String>> {
        // Every change is a single insert, remove or clear: a poisoned map is consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn cm(name: &str, rv: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c
    }

    #[test]
    fn only_the_written_version_of_the_written_object_is_an_echo() {
        let e = Echoes::default();
        e.wrote(&cm("a", "5"));
        assert!(!e.is_echo(&cm("a", "4")), "an older version");
        assert!(!e.is_echo(&cm("b", "5")), "another object");
        let mut s = Secret::default();
        s.metadata.name = Some("a".into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.resource_version = Some("5".into());
        assert!(!e.is_echo(&s), "another kind");
        assert!(e.is_echo(&cm("a", "5")));
        assert!(!e.is_echo(&cm("a", "5")), "a note is spent by its echo");
    }

    #[test]
    fn a_newer_write_replaces_the_note() {
        let e = Echoes::default();
        e.wrote(&cm("a", "5"));
        e.wrote(&cm("a", "7"));
        assert!(!e.is_echo(&cm("a", "5")));
        assert!(e.is_echo(&cm("a", "7")));
    }

    #[tokio::test]
    async fn streams_lose_only_echoes() {
        let e = Arc::new(Echoes::default());
        e.wrote(&cm("a", "2"));
        let events = futures::stream::iter(vec![
            Ok::<_, String>(cm("a", "1")),
            Ok(cm("a", "2")),
            Err("watch error".to_string()),
            Ok(cm("a", "3")),
        ]);
        let out: Vec<_> = e.unechoed(events).collect().await;
        let rvs: Vec<String> = out
            .iter()
            .map(|r| match r {
                Ok(c) => c.metadata.resource_version.clone().unwrap_or_default(),
                Err(e) => e.clone(),
            })
            .collect();
        assert_eq!(rvs, ["1", "watch error", "3"]);
    }
}
