//! Claiming a pod set for an instance. The first pod of a set is the lock:
//! it is relabelled with a resourceVersion precondition, so of two claimers
//! exactly one succeeds; the set's other pods follow. Claimed pods lose the
//! owner reference to their Template (the instance's finalizer removes them,
//! as owner references cannot cross namespaces) and get the instance's
//! deadline.

use super::Pools;
use super::build::generation;
use crate::error::Error;
use crate::labels::{INSTANCE, TENANT};
use crate::quota;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use resources::admission::deadline;
use resources::usage::{self, Usage};
use resources::vocabulary::{CLAIM, INSTANCE_NAMESPACE, POOL_SET, TEMPLATE_GENERATION};
use resources::{Instance, Template, Tenant};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a claim attempt came to.
#[derive(Debug)]
pub enum Outcome {
    /// The set's pods, claimed for the instance.
    Claimed { set: String, pods: Vec<Pod> },
    /// No Ready set of the template's current generation.
    Empty,
    /// A set would take the tenant over its quota (the reason says which part).
    OverQuota(String),
}

/// The pods already claimed for the instance with this uid.
pub async fn claimed_for(client: &Client, pool_ns: &str, uid: &str) -> Result<Vec<Pod>, kube::Error> {
    let lp = ListParams::default().labels(&format!("{CLAIM}={uid}"));
    Ok(Api::<Pod>::namespaced(client.clone(), pool_ns).list(&lp).await?.items)
}

pub fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Unclaimed pool pods grouped by set, each set's pods in template order
/// (`P` is a pod or a shared one from a watch cache, which is not copied).
pub fn sets<P: Borrow<Pod>>(tpl: &Template, pods: impl IntoIterator<Item = P>) -> BTreeMap<String, Vec<P>> {
    let mut out: BTreeMap<String, Vec<P>> = BTreeMap::new();
    for p in pods {
        let labels = p.borrow().labels();
        if labels.contains_key(CLAIM) {
            continue;
        }
        if let Some(set) = labels.get(POOL_SET).cloned() {
            out.entry(set).or_default().push(p);
        }
    }
    let order = |p: &P| {
        let name = p.borrow().labels().get(resources::vocabulary::POD).map(String::as_str).unwrap_or_default();
        tpl.spec.pods.iter().position(|t| t.name == name).unwrap_or(usize::MAX)
    };
    for v in out.values_mut() {
        v.sort_by_key(order);
    }
    out
}

/// Whether a set is complete, of the template's current generation, and Ready.
pub fn claimable<P: Borrow<Pod>>(tpl: &Template, pods: &[P]) -> bool {
    let generation = generation(tpl);
    pods.len() == tpl.spec.pods.len()
        && pods
            .iter()
            .map(Borrow::borrow)
            .all(|p| is_ready(p) && p.labels().get(TEMPLATE_GENERATION) == Some(&generation))
}

fn created(pods: &[Arc<Pod>]) -> Option<Timestamp> {
    pods.iter().filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0)).min()
}

/// What watch caches show a claim.
#[derive(Clone, Copy)]
pub struct Cached<'a> {
    /// The pool's pods (may lag, which costs a conflict at worst, never a
    /// double claim; listed from the API server while it has not listed).
    pub pool_pods: &'a Store<Pod>,
    /// What the tenant's namespace uses (from its ResourceQuota's status).
    pub namespace_usage: Option<Usage>,
}

/// Claims the oldest Ready set of `tpl`'s pool for `inst` of `tenant`,
/// checking the tenant's quota (its namespace and its claimed pods) first,
/// from `cached` where it can.
pub async fn claim(
    client: &Client,
    pools: &Pools,
    pool_ns: &str,
    cached: Cached<'_>,
    tpl: &Template,
    tenant: &Tenant,
    inst: &Instance,
) -> Result<Outcome, Error> {
    let cache = cached.pool_pods;
    let api: Api<Pod> = Api::namespaced(client.clone(), pool_ns);
    let tname = tpl.name_any();
    let listed = crate::cache::listed_within(cache, Duration::from_secs(5)).await.then_some(cache);
    let pods = super::pool_pods(listed, &api, &tname, true).await?;
    let mut candidates: Vec<(String, Vec<Arc<Pod>>)> =
        sets(tpl, pods).into_iter().filter(|(_, pods)| claimable(tpl, pods)).collect();
    candidates.sort_by_key(|(name, pods)| (created(pods), name.clone()));
    let Some((_, first)) = candidates.first() else {
        return Ok(Outcome::Empty);
    };
    if usage::limits_pods(tenant) {
        let ns = inst.namespace().unwrap_or_default();
        let claimed = quota::Claimed { cache, pools };
        let need = Usage::of_pods(first.iter().map(|p| &**p));
        if let Some(why) = usage::beyond(tenant, need, "it") {
            return Ok(Outcome::OverQuota(why));
        }
        let used = quota::usage(client, &tenant.name_any(), &ns, pool_ns, claimed, cached.namespace_usage).await?;
        if let Some(why) = usage::exceeded(tenant, used, need) {
            return Ok(Outcome::OverQuota(why));
        }
    }
    for (set, pods) in candidates {
        if !pools.reserve(&set) {
            continue;
        }
        match claim_set(&api, tpl, inst, tenant, &pods).await {
            Ok(Some(claimed)) => {
                pools.claimed(&tenant.name_any(), &claimed);
                pools.with_stats(&tname, |s| s.claims.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                return Ok(Outcome::Claimed { set, pods: claimed });
            }
            Ok(None) => {
                tracing::debug!(set = %set, instance = %inst.name_any(), "claim lost to another claimer or the set went away");
                pools.with_stats(&tname, |s| s.conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                pools.release(&set);
            }
            Err(e) => {
                pools.release(&set);
                return Err(e);
            }
        }
    }
    tracing::debug!(instance = %inst.name_any(), "every Ready set is taken or being claimed");
    Ok(Outcome::Empty)
}

/// The pod as claimed: the instance's labels, no owner, the instance's deadline.
fn claimed_pod(pod: &Pod, tpl: &Template, inst: &Instance, tenant: &Tenant) -> Pod {
    let mut p = pod.clone();
    let labels = p.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(TENANT.into(), tenant.name_any());
    labels.insert(INSTANCE.into(), inst.name_any());
    labels.insert(CLAIM.into(), inst.metadata.uid.clone().unwrap_or_default());
    labels.insert(INSTANCE_NAMESPACE.into(), inst.namespace().unwrap_or_default());
    p.metadata.owner_references = None;
    p.metadata.managed_fields = None;
    if let (Some(limit), Some(spec)) = (deadline(tpl, inst.spec.ttl.as_deref()), p.spec.as_mut()) {
        // activeDeadlineSeconds counts from the pod's start: add the time it waited warm.
        let started = p.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0).unwrap_or_else(Timestamp::now);
        let waited = started.duration_until(Timestamp::now()).as_secs().max(0) as u64;
        spec.active_deadline_seconds = Some((limit + waited) as i64);
    }
    p
}

/// Claims one set: Some(pods) when it is the instance's, None when another
/// claimer won it or it went away (anything half-claimed is removed).
async fn claim_set(
    api: &Api<Pod>,
    tpl: &Template,
    inst: &Instance,
    tenant: &Tenant,
    pods: &[Arc<Pod>],
) -> Result<Option<Vec<Pod>>, Error> {
    let mut done = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let name = pod.name_any();
        let mut current = (**pod).clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match api.replace(&name, &PostParams::default(), &claimed_pod(&current, tpl, inst, tenant)).await {
                Ok(p) => {
                    done.push(p);
                    break;
                }
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                    tracing::debug!(pod = %name, code = e.code, message = %e.message, "claim conflict");
                    // A kubelet status update also moves the resourceVersion:
                    // look again, and go on only while the set is still free.
                    let fresh = if e.code == 409 { api.get_opt(&name).await? } else { None };
                    match fresh {
                        Some(f) if !f.labels().contains_key(CLAIM) && (i > 0 || is_ready(&f)) && attempts < 5 => {
                            current = f;
                        }
                        _ => {
                            if i > 0 {
                                // The lock was ours but the set broke up: give back nothing half-done.
                                let uid = inst.metadata.uid.clone().unwrap_or_default();
                                let lp = ListParams::default().labels(&format!("{CLAIM}={uid}"));
                                api.delete_collection(&DeleteParams::background(), &lp).await?;
                            }
                            return Ok(None);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Some(done))
}
/// Deletes a claimed set's pods, and its Services and policies: those of
/// the set (`set`, when the instance's status names it) and those made at
/// the claim (labelled with it).
pub async fn delete_claimed(c: &Client, pool_ns: &str, uid: &str, set: Option<&str>) -> Result<usize, Error> {
    let lp = ListParams::default().labels(&format!("{CLAIM}={uid}"));
    let dp = DeleteParams::background();
    let pods: Api<Pod> = Api::namespaced(c.clone(), pool_ns);
    let left = pods.list_metadata(&lp).await?.items.len();
    if left > 0 {
        pods.delete_collection(&dp, &lp).await?;
    }
    // The claim's own objects carry the set's label too.
    let objects = match set {
        Some(set) => ListParams::default().labels(&format!("{POOL_SET}={set}")),
        None => lp,
    };
    Api::<Service>::namespaced(c.clone(), pool_ns).delete_collection(&dp, &objects).await?;
    Api::<NetworkPolicy>::namespaced(c.clone(), pool_ns).delete_collection(&dp, &objects).await?;
    Ok(left)
}
