//! Removing an instance's objects: at its deletion (the finalizer), at its
//! expiry, and for instances that are gone but left objects behind.

use crate::error::Error;
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER};
use crate::ledger::Ledger;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use resources::Instance;
use resources::vocabulary::CLAIM;
use std::collections::BTreeMap;
use std::time::Duration;

/// Deletes the instance's objects, or, while the deletes this process sent
/// lately are still trusted (the ledger's [`Ledger::deletes_sent`]), counts
/// its pods still there: while its pods terminate, later runs of the cleanup
/// only count what is left instead of deleting everything again. Forgets the
/// instance's cleanup once none is left.
pub async fn delete(ledger: &Ledger, client: &Client, inst: &Instance, pool_ns: &str) -> Result<usize, Error> {
    let left = if ledger.deletes_sent(inst) {
        pods_left(client, inst, pool_ns).await?
    } else {
        let left = delete_instance_objects(client, inst, pool_ns).await?;
        ledger.sent_deletes(inst);
        left
    };
    if left == 0 {
        ledger.cleaned(inst);
    }
    Ok(left)
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

/// Deletes an instance's pods only (a suspension): its own, and a claimed
/// warm set with that set's Services and policies in the pool namespace
/// (a resume claims a new set).
pub async fn delete_pods(client: &Client, inst: &Instance, pool_ns: &str) -> Result<(), Error> {
    let ns = inst.namespace().unwrap_or_default();
    let lp = ListParams::default().labels(&selector(&inst.name_any()));
    Api::<Pod>::namespaced(client.clone(), &ns).delete_collection(&DeleteParams::background(), &lp).await?;
    if let Some(uid) = &inst.metadata.uid {
        let set = inst.status.as_ref().and_then(|s| s.claim.as_ref()).map(|c| c.set.as_str());
        crate::pool::claim::delete_claimed(client, pool_ns, uid, set).await?;
    }
    Ok(())
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

/// How often a namespace is swept at most: a sweep reads every instance
/// object of the namespace in the caches (tens of thousands in a namespace
/// with 10,000 instances), too much for every reconcile.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How long a gone instance's leftovers, once deleted, are not deleted again
/// (the caches may still show them for a moment).
const SWEEP_AGAIN: Duration = Duration::from_secs(30);

/// Deletes what instances that no longer exist left in namespace `ns`, as
/// the watch caches show it: a reconcile of an instance there looks when
/// the namespace was not swept in the last [`SWEEP_EVERY`], and it costs no
/// request unless something is left. A failure is logged, not returned: the
/// instance's own reconcile goes on, and a later one looks again.
pub async fn sweep_namespace(ledger: &Ledger, caches: &super::cache::Caches, client: &Client, ns: &str) {
    if !caches.listed() || !ledger.due("NamespaceSweep", ("", ns), SWEEP_EVERY) {
        return;
    }
    for orphan in caches.orphans_in(ns) {
        if !ledger.due("OrphanSweep", (ns, &orphan), SWEEP_AGAIN) {
            continue;
        }
        tracing::info!(namespace = %ns, instance = %orphan, "removing objects of an instance that no longer exists");
        if let Err(e) = delete_children(client, ns, &orphan).await {
            tracing::warn!(namespace = %ns, instance = %orphan, error = %e, "orphan sweep failed");
        }
    }
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
