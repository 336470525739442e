//! What the pool reconciler created or deleted and its watch cache has not
//! shown yet — the "expectations" of upstream's ReplicaSet controller.
//!
//! The pool reconciler counts pods from its watch cache, which can lag its
//! own writes by a watch event. Counting a pool from a cache that does not
//! show the pods just created would create them again, past
//! `size + maxUnready`. So, as upstream does, the reconciler creates or
//! deletes nothing while a pool has writes the cache has not shown, and
//! only updates its status; the watch event that shows the write triggers
//! the next reconcile. An expectation older than [`TIMEOUT`] is given up (a
//! watch that lost an event relists, and the cache is right again).

use k8s_openapi::api::core::v1::Pod;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an unseen write holds a pool back at most.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Pending {
    /// Pods created, not yet in the cache.
    created: HashSet<String>,
    /// Pods deleted, still in the cache without a deletionTimestamp.
    deleted: HashSet<String>,
    since: Option<Instant>,
}

/// Per pool (template name): writes waiting to be seen.
#[derive(Default)]
pub struct Expectations {
    pools: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // Every update is a single insert or remove, so a poisoned map is consistent.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a pod created for `pool`.
    pub fn created(&self, pool: &str, pod: String) {
        self.note(pool, pod, |p| &mut p.created);
    }

    /// Notes a pod of `pool` deleted.
    pub fn deleted(&self, pool: &str, pod: String) {
        self.note(pool, pod, |p| &mut p.deleted);
    }

    fn note(&self, pool: &str, pod: String, which: fn(&mut Pending) -> &mut HashSet<String>) {
        let mut pools = self.lock();
        let p = pools.entry(pool.to_string()).or_default();
        if which(p).insert(pod) {
            p.since = Some(Instant::now());
        }
    }

    /// Drops what `pods` (the cache's view of the pool) shows done; true when
    /// nothing is left to wait for, so the pool may be changed.
    pub fn satisfied<P: Borrow<Pod>>(&self, pool: &str, pods: &[P]) -> bool {
        let mut pools = self.lock();
        let Some(p) = pools.get_mut(pool) else { return true };
        if p.since.is_some_and(|s| s.elapsed() > TIMEOUT) {
            tracing::warn!(
                pool,
                created = p.created.len(),
                deleted = p.deleted.len(),
                "the pool watch never showed these writes; counting from the cache again"
            );
            pools.remove(pool);
            return true;
        }
        let live: HashMap<&str, &Pod> =
            pods.iter().map(Borrow::borrow).filter_map(|q: &Pod| Some((q.metadata.name.as_deref()?, q))).collect();
        p.created.retain(|n| !live.contains_key(n.as_str()));
        p.deleted.retain(|n| live.get(n.as_str()).is_some_and(|q| q.metadata.deletion_timestamp.is_none()));
        let done = p.created.is_empty() && p.deleted.is_empty();
        if done {
            pools.remove(pool);
        }
        done
    }

    /// Forgets a pool that is gone.
    pub fn forget(&self, pool: &str) {
        self.lock().remove(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, deleting: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        if deleting {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        }
        p
    }

    #[test]
    fn writes_hold_the_pool_until_the_cache_shows_them() {
        let e = Expectations::default();
        assert!(e.satisfied::<Pod>("web", &[]), "nothing written, nothing to wait for");
        e.created("web", "a".into());
        e.created("web", "b".into());
        assert!(!e.satisfied("web", &[pod("a", false)]), "b is not in the cache yet");
        assert!(e.satisfied::<Pod>("other", &[]), "pools are apart");
        assert!(e.satisfied("web", &[pod("a", false), pod("b", false)]));
        // A delete is seen when the pod is gone or terminating.
        e.deleted("web", "a".into());
        e.deleted("web", "b".into());
        assert!(!e.satisfied("web", &[pod("a", true), pod("b", false)]));
        assert!(e.satisfied("web", &[pod("a", true)]));
        e.created("web", "c".into());
        e.forget("web");
        assert!(e.satisfied::<Pod>("web", &[]));
    }
}
