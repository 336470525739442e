//! A primary object (a Tenant, an Instance) as the reconciler's own last
//! write left it, until the watch cache catches up.
//!
//! A reconcile runs on the object from the watch cache. After the reconciler
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

use super::record::{Ledger, Written, key};
use kube::{Resource, ResourceExt};
use std::any::Any;
use std::sync::Arc;

/// Versions one note remembers as superseded by its object (a chain of
/// writes longer than this forgets its oldest versions).
const MAX_BASES: usize = 8;

impl Ledger {
    /// Writes the object `base` (its finalizer, its status) with `write`: the
    /// write is announced ([`Ledger::writing`]), its watch event is an echo,
    /// and what it returned is noted. Returns that, as [`Ledger::note`] keeps it.
    pub async fn write<K>(
        &self,
        base: &K,
        write: impl std::future::Future<Output = Result<K, kube::Error>>,
    ) -> Result<Arc<K>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let w = self.writing(base);
        let now = write.await?;
        w.wrote(&now);
        Ok(self.note(base, now))
    }

    /// Notes that a write made on version `base` of the object returned `now`;
    /// returns `now` as it is kept (without managedFields, as the caches keep
    /// objects).
    pub fn note<K>(&self, base: &K, mut now: K) -> Arc<K>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        now.managed_fields_mut().clear();
        let now = Arc::new(now);
        let (Some(rv), Some(now_version)) = (base.resource_version(), now.resource_version()) else { return now };
        if rv == now_version {
            return now;
        }
        let mut state = self.lock();
        let record = state.record(key(base));
        // A write on top of the previous write's result continues its chain.
        let mut bases = match record.written.take() {
            Some(n) if n.now_version == rv => n.bases,
            _ => Vec::new(),
        };
        if bases.len() >= MAX_BASES {
            bases.remove(0);
        }
        bases.push(rv);
        let kept: Arc<dyn Any + Send + Sync> = now.clone();
        record.written = Some(Box::new(Written { bases, now_version, now: kept }));
        now
    }

    /// The object to reconcile: the written one when the cache still holds the
    /// version the write was made on, else the cached one.
    pub fn newest<K>(&self, cached: Arc<K>) -> Arc<K>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let k = key(cached.as_ref());
        let mut state = self.lock();
        let rv = cached.resource_version();
        let Some(record) = state.records.get_mut(&k) else { return cached };
        let Some(n) = record.written.as_ref() else { return cached };
        if n.bases.iter().any(|b| rv.as_deref() == Some(b.as_str()))
            && let Ok(now) = n.now.clone().downcast::<K>()
        {
            return now;
        }
        record.written = None;
        state.tidy(k);
        cached
    }

    /// The watch delivered `o`: a note whose chain `o` is not part of is
    /// dropped, as the next reconcile would drop it. (A write's own watch
    /// event may trigger no reconcile at all, see [`Ledger::unechoed`];
    /// without this its note, a whole object, would stay until the object's
    /// next reconcile.)
    pub fn seen<K: Resource<DynamicType = ()>>(&self, o: &K) {
        let k = key(o);
        let rv = o.resource_version();
        let mut state = self.lock();
        let Some(record) = state.records.get_mut(&k) else { return };
        if record.written.as_ref().is_some_and(|n| !n.bases.iter().any(|b| rv.as_deref() == Some(b.as_str()))) {
            record.written = None;
            state.tidy(k);
        }
    }

    /// A primary object's watch events as a reconciler should take them:
    /// each is shown to `seen` first (an echo is what catches the cache up
    /// with a write, so this must come before the echoes go), then the echoes
    /// of the reconciler's own writes are dropped.
    pub fn primary_events<K, E, S>(
        self: &Arc<Self>,
        events: S,
    ) -> impl futures::Stream<Item = Result<K, E>> + Send + use<K, E, S>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
        E: Send + 'static,
        S: futures::Stream<Item = Result<K, E>> + Send + 'static,
    {
        use futures::TryStreamExt;
        let me = self.clone();
        self.unechoed(events.inspect_ok(move |o| me.seen(o)))
    }

    /// How many versions the note of `o` stands for (tests).
    #[cfg(test)]
    fn bases<K: Resource<DynamicType = ()>>(&self, o: &K) -> usize {
        self.lock().records.get(&key(o)).and_then(|r| r.written.as_ref()).map_or(0, |n| n.bases.len())
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
        let w = Ledger::default();
        w.note(&cm("5", "old"), cm("7", "new"));
        // The cache still has version 5: the write's result is newer.
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(w.len(), 1);
        // The cache caught up: its copy is used and the note dropped.
        assert_eq!(w.newest(Arc::new(cm("7", "new"))).metadata.resource_version.as_deref(), Some("7"));
        assert!(w.is_empty());
        // Once dropped, an old version is taken as it is (it is what the cache has).
        assert_eq!(w.newest(Arc::new(cm("5", "old"))).data.as_ref().unwrap()["k"], "old");
    }

    #[test]
    fn a_cache_behind_a_chain_of_writes_gets_the_last_result() {
        let w = Ledger::default();
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
        let w = Ledger::default();
        for i in 0..20 {
            w.note(&cm(&i.to_string(), "v"), cm(&(i + 1).to_string(), "v"));
        }
        assert_eq!(w.newest(Arc::new(cm("15", "v"))).metadata.resource_version.as_deref(), Some("20"));
        assert_eq!(w.bases(&cm("20", "v")), MAX_BASES);
    }

    #[test]
    fn the_watch_catching_up_drops_the_note() {
        let w = Ledger::default();
        w.note(&cm("5", "old"), cm("7", "finalizer"));
        w.note(&cm("7", "finalizer"), cm("9", "status"));
        // Versions of the chain leave the note alone; the last write's own does not.
        w.seen(&cm("5", "old"));
        w.seen(&cm("7", "finalizer"));
        assert_eq!(w.len(), 1);
        w.seen(&cm("9", "status"));
        assert!(w.is_empty());
    }

    #[test]
    fn someone_elses_change_wins_and_noops_are_not_noted() {
        let w = Ledger::default();
        w.note(&cm("5", "old"), cm("7", "ours"));
        // Someone else changed it after our write: the cache's version is used.
        assert_eq!(w.newest(Arc::new(cm("9", "theirs"))).data.as_ref().unwrap()["k"], "theirs");
        assert!(w.is_empty());
        // A write that changed nothing (same version) is not noted.
        w.note(&cm("9", "theirs"), cm("9", "theirs"));
        assert!(w.is_empty());
        w.note(&cm("9", "theirs"), cm("10", "ours"));
        w.forget(&cm("10", "ours"));
        assert!(w.is_empty());
    }
}
