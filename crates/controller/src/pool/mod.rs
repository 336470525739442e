//! Warm pools: complete pod sets of a template kept Ready in the pool
//! namespace and handed to new instances by relabelling, so a start takes
//! milliseconds instead of a cold pod start.
//!
//! - [`build`]: the pure part — a pod set, the pool namespace's own objects,
//!   the prepull DaemonSet, a claimed set's Services and NetworkPolicies.
//! - [`reconcile`]: the pool reconciler, one pool per Template with
//!   `spec.warmPool`: refill (bounded by `size + maxUnready`, paced by
//!   `refillPerSecond`), replace failed sets with back-off, roll on template
//!   changes, drain, and sweep what claimed instances left behind.
//! - [`claim`]: what the instance reconciler calls: pick a Ready set, claim it
//!   with resourceVersion preconditions, and check the tenant's quota first.

pub mod build;
pub mod claim;
pub mod reconcile;

use crate::labels::TENANT;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use resources::usage::Usage;
use resources::vocabulary::{CLAIM, POOL};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `template`'s pool pods (with `unclaimed`, only those not claimed), shared
/// from the pool watch's `cache` when given, else listed from the API server.
pub async fn pool_pods(
    cache: Option<&Store<Pod>>,
    api: &kube::Api<Pod>,
    template: &str,
    unclaimed: bool,
) -> Result<Vec<Arc<Pod>>, kube::Error> {
    let wanted = |p: &Pod| {
        let l = p.labels();
        l.get(POOL).map(String::as_str) == Some(template) && !(unclaimed && l.contains_key(CLAIM))
    };
    if let Some(store) = cache {
        return Ok(store.state().into_iter().filter(|p| wanted(p)).collect());
    }
    let mut selector = format!("{}={template}", POOL);
    if unclaimed {
        selector.push_str(&format!(",!{CLAIM}"));
    }
    let lp = kube::api::ListParams::default().labels(&selector);
    Ok(api.list(&lp).await?.items.into_iter().map(Arc::new).collect())
}

/// How long a reservation keeps other claimers of this process off a set.
const RESERVATION: Duration = Duration::from_secs(30);

/// State the pool and instance reconcilers share: sets being claimed by this
/// process (so concurrent claims do not all race for the oldest set; the
/// resourceVersion precondition is what makes a double claim impossible) and
/// counters for status and metrics.
#[derive(Default)]
pub struct Pools {
    reserved: Mutex<HashMap<String, Instant>>,
    stats: Mutex<HashMap<String, Arc<Stats>>>,
    /// Pods this process claimed that the pool watch may not show as claimed
    /// yet: pod name → (tenant, what it uses, when claimed).
    recent: Mutex<HashMap<String, (String, Usage, Instant)>>,
    /// Instances (by uid) this process claimed a set for, and when.
    claimants: Mutex<HashMap<String, Instant>>,
}

/// Counters of one template's pool since the controller started, and its
/// pod sets as the last pool reconcile counted them (for metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub claims: AtomicU64,
    pub conflicts: AtomicU64,
    pub refills: AtomicU64,
    pub failures: AtomicU64,
    pub size: AtomicU64,
    pub ready: AtomicU64,
    pub starting: AtomicU64,
    pub claimed: AtomicU64,
}

impl Pools {
    /// Reserves a set for one claim attempt; false when another attempt holds it.
    pub fn reserve(&self, set: &str) -> bool {
        let mut r = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if r.len() > 4096 {
            r.retain(|_, at| now.duration_since(*at) < RESERVATION);
        }
        match r.get(set) {
            Some(at) if now.duration_since(*at) < RESERVATION => false,
            _ => {
                r.insert(set.to_string(), now);
                true
            }
        }
    }

    /// Releases a reservation after a failed attempt (a claimed set stays
    /// reserved until it expires; it is no longer a candidate anyway).
    pub fn release(&self, set: &str) {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner()).remove(set);
    }

    /// Notes pods just claimed for `tenant`, so quota checks count them before
    /// the pool watch shows them claimed.
    pub fn claimed(&self, tenant: &str, pods: &[Pod]) {
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for p in pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            r.insert(name, (tenant.to_string(), Usage::of_pods(std::slice::from_ref(p)), now));
        }
        let mut c = self.claimants.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() > 4096 {
            c.retain(|_, at| now.duration_since(*at) < RESERVATION);
        }
        for uid in pods.iter().filter_map(|p| p.labels().get(CLAIM)) {
            c.insert(uid.clone(), now);
        }
    }

    /// Whether this process claimed a set for the instance `uid` lately
    /// (within the reservation time, by which the pool watch shows it).
    pub fn claimed_lately(&self, uid: &str) -> bool {
        let c = self.claimants.lock().unwrap_or_else(|e| e.into_inner());
        c.get(uid).is_some_and(|at| at.elapsed() < RESERVATION)
    }

    /// What `tenant`'s claimed pods use: those the pool cache shows claimed
    /// for it, and those this process claimed that it does not show yet (for
    /// up to the reservation time; a note is dropped once the cache has it).
    pub fn claimed_usage(&self, tenant: &str, cache: &Store<Pod>) -> Usage {
        let pods = cache.state();
        let claimed: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.labels().get(TENANT).map(String::as_str) == Some(tenant) && p.labels().contains_key(CLAIM))
            .map(|p| p.as_ref())
            .collect();
        let mine: HashSet<&str> = claimed.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        let mut used = Usage::of_pods(claimed);
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        r.retain(|name, (t, _, at)| {
            now.duration_since(*at) < RESERVATION && !(t == tenant && mine.contains(name.as_str()))
        });
        for (t, u, _) in r.values() {
            if t == tenant {
                used = used + *u;
            }
        }
        used
    }

    /// Runs `f` on the counters of `template`'s pool.
    pub fn with_stats<R>(&self, template: &str, f: impl FnOnce(&Stats) -> R) -> R {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(s.entry(template.to_string()).or_insert_with(|| Arc::new(Stats::default())))
    }

    /// Forgets a pool that no longer exists (its template was deleted or lost `warmPool`).
    pub fn forget(&self, template: &str) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).remove(template);
    }

    /// Every pool's counters, by template.
    pub fn snapshot(&self) -> Vec<(String, Arc<Stats>)> {
        let s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = s.iter().map(|(t, st)| (t.clone(), st.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn pod(name: &str, tenant: Option<&str>) -> Pod {
        let mut labels = json!({POOL: "web"});
        if let Some(t) = tenant {
            labels[TENANT] = json!(t);
            labels[CLAIM] = json!("uid");
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "paddock-pool", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "250m"}}}]},
            "status": {"phase": "Running"}}))
        .unwrap()
    }

    #[test]
    fn claims_count_before_the_cache_shows_them_and_once_after() {
        let (store, mut writer) = kube::runtime::reflector::store::<Pod>();
        writer.apply_watcher_event(&Event::Apply(pod("s1-web", Some("a"))));
        writer.apply_watcher_event(&Event::Apply(pod("s2-web", None)));
        writer.apply_watcher_event(&Event::Apply(pod("s3-web", Some("b"))));
        let pools = Pools::default();
        assert_eq!(pools.claimed_usage("a", &store).pods, 1);
        // Claimed just now: the cache still shows s2 unclaimed.
        pools.claimed("a", &[pod("s2-web", Some("a"))]);
        let used = pools.claimed_usage("a", &store);
        assert_eq!((used.pods, used.cpu), (2, quantity::Quantity::parse("500m").unwrap()));
        assert_eq!(pools.claimed_usage("b", &store).pods, 1, "another tenant's claims are not a's");
        // The watch catches up: counted once, and the note is gone.
        writer.apply_watcher_event(&Event::Apply(pod("s2-web", Some("a"))));
        assert_eq!(pools.claimed_usage("a", &store).pods, 2);
        // The instance stops and its pod goes: nothing lingers.
        writer.apply_watcher_event(&Event::Delete(pod("s2-web", Some("a"))));
        assert_eq!(pools.claimed_usage("a", &store).pods, 1);
    }
}
