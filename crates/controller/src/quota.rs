//! A tenant's quota across namespaces. The ResourceQuota in a tenant's
//! namespace only sees that namespace, but pods claimed from a warm pool run in
//! the pool namespace; Paddock counts both before it claims or starts pods, so
//! `spec.quota.pods/cpu/memory` hold for the tenant as a whole.

use crate::labels::TENANT;
use crate::pool::Pools;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::reflector::Store;
use resources::usage::Usage;
use resources::vocabulary::CLAIM;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where pods claimed from warm pools are counted from: the pool pods' watch
/// cache, plus this process's claims the cache may not show yet. Without it,
/// they are listed from the API server: a list per claim, on the hot path of
/// every warm start.
#[derive(Clone, Copy)]
pub struct Claimed<'a> {
    pub cache: &'a Store<Pod>,
    pub pools: &'a Pools,
}

/// What a tenant is using now: pods in its namespace and pods claimed for it
/// in the pool namespace.
pub async fn usage(
    client: &kube::Client,
    tenant: &str,
    ns: &str,
    pool_ns: &str,
    claimed: Claimed<'_>,
    cached: Option<Usage>,
) -> Result<Usage, kube::Error> {
    Ok(namespace_usage(client, ns, cached).await? + claimed_usage(client, tenant, pool_ns, claimed).await?)
}

/// What the pods of the tenant's own namespace use: `cached` (from its
/// ResourceQuota's status in a watch cache) when given, else its pods, listed.
pub async fn namespace_usage(client: &kube::Client, ns: &str, cached: Option<Usage>) -> Result<Usage, kube::Error> {
    if let Some(u) = cached {
        return Ok(u);
    }
    Ok(Usage::of_pods(&Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items))
}

/// What the tenant's claimed warm pods use (they run in the pool namespace).
pub async fn claimed_usage(
    client: &kube::Client,
    tenant: &str,
    pool_ns: &str,
    claimed: Claimed<'_>,
) -> Result<Usage, kube::Error> {
    if crate::cache::ready(claimed.cache) {
        return Ok(claimed.pools.claimed_usage(tenant, claimed.cache));
    }
    let lp = ListParams::default().labels(&format!("{TENANT}={tenant},{CLAIM}"));
    Ok(Usage::of_pods(&Api::<Pod>::namespaced(client.clone(), pool_ns).list(&lp).await?.items))
}

/// All or nothing: deletes the pods an instance's start created before the
/// quota refused the next one, so an instance that cannot start holds no
/// quota others could use.
pub async fn give_back(pods: &Api<Pod>, created: &[String]) -> Result<(), kube::Error> {
    for name in created {
        match pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Instances the quota refused, and when each may try again.
///
/// An instance whose pods do not all fit keeps none of them (the ones created
/// before the refusal are deleted), so it holds no quota it cannot use. The
/// watch events of those deletions must not start the next try at once: that
/// would create and delete the same pods in a loop.
#[derive(Default)]
pub struct Refusals {
    not_before: Mutex<HashMap<String, Instant>>,
}

impl Refusals {
    /// How long a refused instance waits before it tries again.
    pub const RETRY: Duration = Duration::from_secs(15);

    /// Notes that the quota refused instance `uid` just now.
    pub fn refused(&self, uid: &str) {
        let now = Instant::now();
        let mut m = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, at| *at > now);
        m.insert(uid.to_string(), now + Self::RETRY);
    }

    /// How long instance `uid` must still wait before it tries again, if at all.
    pub fn wait(&self, uid: &str) -> Option<Duration> {
        let m = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        m.get(uid).and_then(|at| at.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_instance_waits_before_it_tries_again() {
        let r = Refusals::default();
        assert_eq!(r.wait("a"), None);
        r.refused("a");
        let left = r.wait("a").unwrap();
        assert!(left > Refusals::RETRY / 2 && left <= Refusals::RETRY, "{left:?}");
        assert_eq!(r.wait("b"), None);
    }
}
