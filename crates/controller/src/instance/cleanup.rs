//! Removing an instance's objects: at its deletion (the finalizer), at its
//! expiry, and for instances that are gone but left objects behind.

use crate::error::Error;
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use resources::Instance;
use resources::vocabulary::CLAIM;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cleanup trusts its earlier deletes before sending them again.
const RESEND: Duration = Duration::from_secs(30);

/// Instances (by uid) whose objects this process deleted for their cleanup,
/// and when: while their pods terminate, later runs of the cleanup only count
/// what is left instead of deleting everything again (seven deletes and two
/// lists a run, three runs an instance before).
#[derive(Default)]
pub struct Cleaning(Mutex<HashMap<String, Instant>>);

impl Cleaning {
    /// Deletes the instance's objects, or (when this process did lately)
    /// counts its pods still there; forgets the instance once none is left.
    pub async fn delete(&self, client: &Client, inst: &Instance, pool_ns: &str) -> Result<usize, Error> {
        let uid = inst.metadata.uid.clone().unwrap_or_default();
        let sent = self.lock().get(&uid).is_some_and(|at| at.elapsed() < RESEND);
        let left = if sent {
            pods_left(client, inst, pool_ns).await?
        } else {
            let left = delete_instance_objects(client, inst, pool_ns).await?;
            let mut c = self.lock();
            if c.len() > 4096 {
                c.retain(|_, at| at.elapsed() < RESEND);
            }
            c.insert(uid.clone(), Instant::now());
            left
        };
        if left == 0 {
            self.lock().remove(&uid);
        }
        Ok(left)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn selector(inst: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{INSTANCE}={inst}")
}

/// Deletes an instance's objects: in its namespace, and a claimed warm set.
pub async fn delete_instance_objects(client: &Client, inst: &Instance, pool_ns: &str) -> Result<usize, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let mut left = delete_children(client, &ns, &inst.name_any()).await?;
    if let Some(uid) = &inst.metadata.uid {
        let set = inst.status.as_ref().and_then(|s| s.claim.as_ref()).map(|c| c.set.as_str());
        left += crate::pool::claim::delete_claimed(client, pool_ns, uid, set).await?;
    }
    Ok(left)
}

/// The instance's pods still there (terminating ones included), its own and
/// those claimed for it.
async fn pods_left(client: &Client, inst: &Instance, pool_ns: &str) -> Result<usize, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let lp = ListParams::default().labels(&selector(&inst.name_any()));
    let mut left = Api::<Pod>::namespaced(client.clone(), &ns).list_metadata(&lp).await?.items.len();
    if let Some(uid) = &inst.metadata.uid {
        let lp = ListParams::default().labels(&format!("{}={uid}", resources::vocabulary::CLAIM));
        left += Api::<Pod>::namespaced(client.clone(), pool_ns).list_metadata(&lp).await?.items.len();
    }
    Ok(left)
}

async fn delete_children(client: &Client, ns: &str, inst: &str) -> Result<usize, Error> {
    let lp = ListParams::default().labels(&selector(inst));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let left = pods.list_metadata(&lp).await?.items.len();
    let dp = DeleteParams::background();
    pods.delete_collection(&dp, &lp).await?;
    Api::<Service>::namespaced(client.clone(), ns).delete_collection(&dp, &lp).await?;
    Api::<NetworkPolicy>::namespaced(client.clone(), ns).delete_collection(&dp, &lp).await?;
    Api::<ConfigMap>::namespaced(client.clone(), ns).delete_collection(&dp, &lp).await?;
    Api::<Secret>::namespaced(client.clone(), ns).delete_collection(&dp, &lp).await?;
    Ok(left)
}

/// Deletes objects labelled for an Instance that does not exist (any more):
/// owner references cover most cases, this covers the rest (e.g. an Instance
/// force-removed while the controller was down). Returns how many instances'
/// leftovers were removed.
pub async fn sweep_orphans(client: &Client, namespace: Option<&str>) -> Result<usize, Error> {
    let lp = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER},{INSTANCE}"));
    let mut seen: BTreeMap<(String, String), ()> = BTreeMap::new();
    let (pods, services, policies): (Api<Pod>, Api<Service>, Api<NetworkPolicy>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone())),
    };
    let mut collect = |items: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>| {
        for m in items {
            // Claimed warm pods are the pool reconciler's to sweep (by instance uid).
            if m.labels.as_ref().is_some_and(|l| l.contains_key(CLAIM)) {
                continue;
            }
            if let (Some(ns), Some(i)) = (m.namespace, m.labels.and_then(|l| l.get(INSTANCE).cloned())) {
                seen.insert((ns, i), ());
            }
        }
    };
    collect(pods.list_metadata(&lp).await?.items.into_iter().map(|o| o.metadata).collect());
    collect(services.list_metadata(&lp).await?.items.into_iter().map(|o| o.metadata).collect());
    collect(policies.list_metadata(&lp).await?.items.into_iter().map(|o| o.metadata).collect());
    let mut swept = 0;
    for (ns, inst) in seen.into_keys() {
        let exists = Api::<Instance>::namespaced(client.clone(), &ns).get_opt(&inst).await?.is_some();
        if !exists {
            tracing::info!(namespace = %ns, instance = %inst, "removing objects of an instance that no longer exists");
            delete_children(client, &ns, &inst).await?;
            swept += 1;
        }
    }
    Ok(swept)
}
