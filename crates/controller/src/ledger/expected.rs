//! What a pool reconciler created or deleted and its watch cache has not
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

use super::record::{Expected, Key, Ledger, key_of};
use k8s_openapi::api::core::v1::Pod;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long an unseen write holds a pool back at most.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A pool's record (by its template's name).
fn pool_key(pool: &str) -> Key {
    key_of("Pool", "", pool)
}

impl Ledger {
    /// Notes a pod created for `pool`.
    pub fn expect_created(&self, pool: &str, pod: String) {
        self.expect(pool, pod, |p| &mut p.created);
    }

    /// Notes a pod of `pool` deleted.
    pub fn expect_deleted(&self, pool: &str, pod: String) {
        self.expect(pool, pod, |p| &mut p.deleted);
    }

    fn expect(&self, pool: &str, pod: String, which: fn(&mut Expected) -> &mut HashSet<String>) {
        let mut state = self.lock();
        let p = state.record(pool_key(pool)).expected.get_or_insert_default();
        if which(p).insert(pod) {
            p.since = Some(Instant::now());
        }
    }

    /// Drops what `pods` (the cache's view of the pool) shows done; true when
    /// nothing is left to wait for, so the pool may be changed.
    pub fn expectations_met<P: Borrow<Pod>>(&self, pool: &str, pods: &[P]) -> bool {
        let k = pool_key(pool);
        let mut state = self.lock();
        let Some(p) = state.records.get_mut(&k).and_then(|r| r.expected.as_mut()) else { return true };
        let done = if p.since.is_some_and(|s| s.elapsed() > TIMEOUT) {
            tracing::warn!(
                pool,
                created = p.created.len(),
                deleted = p.deleted.len(),
                "the pool watch never showed these writes; counting from the cache again"
            );
            true
        } else {
            let live: HashMap<&str, &Pod> =
                pods.iter().map(Borrow::borrow).filter_map(|q: &Pod| Some((q.metadata.name.as_deref()?, q))).collect();
            p.created.retain(|n| !live.contains_key(n.as_str()));
            p.deleted.retain(|n| live.get(n.as_str()).is_some_and(|q| q.metadata.deletion_timestamp.is_none()));
            p.created.is_empty() && p.deleted.is_empty()
        };
        if done {
            forget_expectations(&mut state, k);
        }
        done
    }

    /// Forgets a pool that is gone.
    pub fn forget_pool(&self, pool: &str) {
        forget_expectations(&mut self.lock(), pool_key(pool));
    }
}

fn forget_expectations(state: &mut super::record::State, k: Key) {
    state.change(k, |r| r.expected = None);
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
        let e = Ledger::default();
        assert!(e.expectations_met::<Pod>("web", &[]), "nothing written, nothing to wait for");
        e.expect_created("web", "a".into());
        e.expect_created("web", "b".into());
        assert!(!e.expectations_met("web", &[pod("a", false)]), "b is not in the cache yet");
        assert!(e.expectations_met::<Pod>("other", &[]), "pools are apart");
        assert!(e.expectations_met("web", &[pod("a", false), pod("b", false)]));
        // A delete is seen when the pod is gone or terminating.
        e.expect_deleted("web", "a".into());
        e.expect_deleted("web", "b".into());
        assert!(!e.expectations_met("web", &[pod("a", true), pod("b", false)]));
        assert!(e.expectations_met("web", &[pod("a", true)]));
        e.expect_created("web", "c".into());
        e.forget_pool("web");
        assert!(e.expectations_met::<Pod>("web", &[]));
    }
}
