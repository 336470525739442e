//! The primary object as the controller's own last write left it, until the
//! watch cache catches up; and the finalizer added in the reconcile that
//! needs it.
//!
//! A reconcile runs on the object from the watch cache. After the controller
//! writes that object (its finalizer, its status), the next reconcile can
//! start before the watch has delivered the write, and then sees the object
//! without it: it would add the finalizer again (a failed, guarded patch)
//! or write the same status again and record the same Event twice. The
//! writer notes what its write returned; a later reconcile that is handed
//! the very version the write was made on uses the written object instead.
//! That is always safe: the server applied the write on that version or on a
//! newer one, so what it returned is at least as new as the cached copy.
//! Writes in a row (the finalizer, then the status) make a chain: every
//! version one of them was made on stands for the last one's result, so a
//! cache still behind the first write does not hand out the object without
//! the finalizer. Any other version in the cache (the writes arrived, or
//! someone changed the object since) is used as it is, and the note is
//! dropped.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// Notes kept at most.
const MAX_NOTES: usize = 16_384;

/// Versions one note remembers as superseded by its object (a chain of
/// writes longer than this forgets its oldest versions).
const MAX_BASES: usize = 8;

/// (namespace, name) of a primary object.
type Key = (String, String);

/// The controller's last writes of its primary objects, not yet seen in the cache.
pub struct LastWrite<K> {
    notes: Mutex<HashMap<Key, Note<K>>>,
}

struct Note<K> {
    /// The resourceVersions the chain of writes was made on, oldest first.
    bases: Vec<String>,
    /// What the last write returned.
    now: Arc<K>,
}

impl<K> Default for LastWrite<K> {
    fn default() -> Self {
        Self { notes: Mutex::new(HashMap::new()) }
    }
}

fn key<K: Resource>(o: &K) -> Key {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

impl<K: Resource> LastWrite<K> {
    /// Writes the object `base` (its finalizer, its status) with `write`: the
    /// write is announced to `echoes`, its watch event is an echo, and what it
    /// returned is noted here. Returns that, as [`LastWrite::note`] keeps it.
    pub async fn write(
        &self,
        echoes: &crate::echo_filter::EchoFilter,
        base: &K,
        write: impl std::future::Future<Output = Result<K, kube::Error>>,
    ) -> Result<Arc<K>, kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let w = echoes.writing(base);
        let now = write.await?;
        w.wrote(&now);
        Ok(self.note(base, now))
    }

    /// Notes that a write made on version `base` of the object returned `now`;
    /// returns `now` as it is kept (without managedFields, as the caches keep
    /// objects).
    pub fn note(&self, base: &K, mut now: K) -> Arc<K> {
        now.managed_fields_mut().clear();
        let now = Arc::new(now);
        let (Some(rv), true) = (base.resource_version(), now.resource_version() != base.resource_version()) else {
            return now;
        };
        let mut notes = self.lock();
        // A note is dropped by the next reconcile of its object, or by
        // `forget` when the object goes; one whose object vanished without
        // either would linger, so the map is bounded (losing notes only costs
        // a write the cache would have made unnecessary).
        if notes.len() >= MAX_NOTES {
            notes.clear();
        }
        let k = key(base);
        // A write on top of the previous write's result continues its chain.
        let mut bases = match notes.remove(&k) {
            Some(n) if n.now.resource_version().as_deref() == Some(rv.as_str()) => n.bases,
            _ => Vec::new(),
        };
        if bases.len() >= MAX_BASES {
            bases.remove(0);
        }
        bases.push(rv);
        notes.insert(k, Note { bases, now: now.clone() });
        now
    }

    /// The object to reconcile: the written one when the cache still holds the
    /// version the write was made on, else the cached one.
    pub fn newest(&self, cached: Arc<K>) -> Arc<K> {
        let k = key(cached.as_ref());
        let mut notes = self.lock();
        let rv = cached.resource_version();
        match notes.get(&k) {
            Some(n) if n.bases.iter().any(|b| rv.as_deref() == Some(b.as_str())) => n.now.clone(),
            Some(_) => {
                notes.remove(&k);
                cached
            }
            None => cached,
        }
    }

    /// The watch delivered `o`: a note whose chain `o` is not part of is
    /// dropped, as the next reconcile would drop it. (A write's own watch
    /// event may trigger no reconcile at all, see `echoes`; without this its
    /// note, a whole object, would stay until the object's next reconcile.)
    pub fn seen(&self, o: &K) {
        let mut notes = self.lock();
        if notes.is_empty() {
            return;
        }
        let k = key(o);
        let rv = o.resource_version();
        if notes.get(&k).is_some_and(|n| !n.bases.iter().any(|b| rv.as_deref() == Some(b.as_str()))) {
            notes.remove(&k);
        }
    }

    /// A primary object's watch events as a controller should take them:
    /// each is shown to `seen` first (an echo is what catches the cache up
    /// with a write, so this must come before the echoes go), then the echoes
    /// of the controller's own writes are dropped.
    pub fn primary_events<E, S>(
        self: &Arc<Self>,
        echoes: &Arc<crate::echo_filter::EchoFilter>,
        events: S,
    ) -> impl futures::Stream<Item = Result<K, E>> + Send + use<K, E, S>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
        E: Send + 'static,
        S: futures::Stream<Item = Result<K, E>> + Send + 'static,
    {
        use futures::TryStreamExt;
        let me = self.clone();
        echoes.unechoed(events.inspect_ok(move |o| me.seen(o)))
    }

    /// Forgets an object (it is gone).
    pub fn forget(&self, o: &K) {
        self.lock().remove(&key(o));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Note<K>>> {
        // Every update is a single insert or remove, so a poisoned map is consistent.
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `finalizer` to `obj` with a JSON patch guarded by a test of the current
/// list (as kube's finalizer helper does, so a concurrent change fails the
/// patch instead of being overwritten) and returns the patched object, so the
/// reconcile can go on at once instead of waiting for the watch to bring the
/// patch back through the queue.
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let patch = match &obj.meta().finalizers {
        None => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]),
        Some(current) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]),
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    let mut with = api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    with.managed_fields_mut().clear();
    Ok(with)
}

/// Removes a finalizer, if the object has it, guarded by a `test` of its
/// place in the list (a concurrent change makes this a 422 to retry).
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let Some(i) = obj.meta().finalizers.iter().flatten().position(|f| f == finalizer) else { return Ok(()) };
    let patch = serde_json::json!([
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")}]);
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(rv: &str, value: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some("a".into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c.data = Some([("k".to_string(), value.to_string())].into());
        c
    }

    #[test]
    fn the_written_object_stands_in_for_the_version_it_was_written_on() {
        let w = LastWrite::default();
        w.note(&cm("5", "old"), cm("7", "new"));
        // The cache still has version 5: the write's result is newer.
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(w.lock().len(), 1);
        // The cache caught up: its copy is used and the note dropped.
        assert_eq!(w.newest(Arc::new(cm("7", "new"))).metadata.resource_version.as_deref(), Some("7"));
        assert!(w.lock().is_empty());
        // Once dropped, an old version is taken as it is (it is what the cache has).
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).data.as_ref().unwrap()["k"], "old");
    }

    #[test]
    fn a_cache_behind_a_chain_of_writes_gets_the_last_result() {
        let w = LastWrite::default();
        // The finalizer on 5 gave 7, the status on 7 gave 9; the cache is still at 5.
        w.note(&cm("5", "old"), cm("7", "finalizer"));
        w.note(&cm("7", "finalizer"), cm("9", "status"));
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).data.as_ref().unwrap()["k"], "status");
        // Caught up with the first write only: still the last result.
        assert_eq!(w.newest(Arc::new(cm("7", "finalizer"))).data.as_ref().unwrap()["k"], "status");
        // A write on some other version starts a new chain.
        w.note(&cm("11", "theirs"), cm("12", "ours"));
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).data.as_ref().unwrap()["k"], "old");
        // A long chain forgets only its oldest versions.
        let w = LastWrite::default();
        for i in 0..20 {
            w.note(&cm(&i.to_string(), "v"), cm(&(i + 1).to_string(), "v"));
        }
        assert_eq!(w.newest(Arc::new(cm("15", "v"))).metadata.resource_version.as_deref(), Some("20"));
        assert_eq!(w.lock().values().next().map(|n| n.bases.len()), Some(MAX_BASES));
    }

    #[test]
    fn the_watch_catching_up_drops_the_note() {
        let w = LastWrite::default();
        w.note(&cm("5", "old"), cm("7", "finalizer"));
        w.note(&cm("7", "finalizer"), cm("9", "status"));
        // Versions of the chain leave the note alone; the last write's own does not.
        w.seen(&cm("5", "old"));
        w.seen(&cm("7", "finalizer"));
        assert_eq!(w.lock().len(), 1);
        w.seen(&cm("9", "status"));
        assert!(w.lock().is_empty());
    }

    #[test]
    fn someone_elses_change_wins_and_noops_are_not_noted() {
        let w = LastWrite::default();
        w.note(&cm("5", "old"), cm("7", "ours"));
        // Someone else changed it after our write: the cache's version is used.
        assert_eq!(w.newest(Arc::new(cm("9", "theirs"))).data.as_ref().unwrap()["k"], "theirs");
        assert!(w.lock().is_empty());
        // A write that changed nothing (same version) is not noted.
        w.note(&cm("9", "theirs"), cm("9", "theirs"));
        assert!(w.lock().is_empty());
        w.note(&cm("9", "theirs"), cm("10", "ours"));
        w.forget(&cm("10", "ours"));
        assert!(w.lock().is_empty());
    }
}
