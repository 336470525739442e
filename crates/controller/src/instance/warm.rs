//! Warm starts, from the instance reconciler's side: whether the instance
//! has (or now gets) a Ready pod set claimed from its template's warm pool
//! ([`crate::pool::claim`] does the claiming), and for a claimed set, its
//! per-instance Services, the tenant's VPN access, and the status.

use super::apply::{apply_all, service_briefs};
use super::context::{Context, Error};
use super::observe::{WARM_START, next_look, observe};
use super::phase::PodBrief;
use super::status::{cond, requested_at, write_status};
use super::world::World;
use crate::labels::FIELD_MANAGER;
use crate::pool::claim::{Cached, Outcome, claim, claimed_for};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use resources::instance::Claim;
use resources::template::Personalize;
use resources::tenant::NodeRole;
use resources::{Instance, Template};

/// How an instance starts.
pub enum Start {
    /// On a claimed pod set.
    Warm { claim: Claim, pods: Vec<Pod> },
    /// On pods of its own; `why` (a reason and words) when it has a warm pool.
    Cold { why: Option<(&'static str, String)> },
    /// Not now: the claim would take the tenant over its quota (the words say how).
    OverQuota(String),
}

/// How `inst` starts: on pods already claimed for it, on a set claimed now,
/// or cold (at once when its template has no pool or it already started cold).
pub async fn resolve(ctx: &Context, inst: &Instance, world: &World) -> Result<Start, Error> {
    let tpl = &world.template;
    let started_cold = inst.status.as_ref().and_then(|s| s.warm) == Some(false);
    let (claim_status, claimed) = already_claimed(ctx, inst, tpl, started_cold).await?;
    if let Some(claim) = claim_status.filter(|_| !claimed.is_empty()) {
        return Ok(Start::Warm { claim, pods: claimed });
    }
    if started_cold || tpl.spec.warm_pool.is_none() {
        return Ok(Start::Cold { why: None });
    }
    if world.tenant.spec.node_role == Some(NodeRole::Shared) && tpl.spec.node_role != Some(NodeRole::Shared) {
        let why = "the tenant runs on shared nodes only and the pool's pods may be on task nodes; started cold";
        return Ok(Start::Cold { why: Some(("TenantPlacement", why.to_string())) });
    }
    let (k, pool_ns) = (ctx.caches()?, &ctx.settings.pool_namespace);
    let ns = inst.namespace().unwrap_or_default();
    let cached = Cached { pool_pods: &k.pool_pods, namespace_usage: k.namespace_usage(&ns) };
    Ok(match claim(&ctx.client, &ctx.pools, pool_ns, cached, tpl, &world.tenant, inst).await? {
        Outcome::Claimed { set, pods } => {
            let claim = claim_at(inst, pool_ns, set);
            tracing::info!(instance = %inst.name_any(), namespace = %ns, set = %claim.set,
                latency_ms = claim.latency_ms, "claimed a warm pod set");
            Start::Warm { claim, pods }
        }
        Outcome::Empty => Start::Cold {
            why: Some(("PoolEmpty", "the template's warm pool had no Ready pod set; started cold".to_string())),
        },
        Outcome::OverQuota(why) => Start::OverQuota(why),
    })
}

/// The claim the status names and the pods claimed for the instance, from
/// the pool watch or (when it may not show them yet) the API server.
async fn already_claimed(
    ctx: &Context,
    inst: &Instance,
    tpl: &Template,
    started_cold: bool,
) -> Result<(Option<Claim>, Vec<Pod>), Error> {
    let (k, pool_ns) = (ctx.caches()?, &ctx.settings.pool_namespace);
    let uid = inst.metadata.uid.clone().unwrap_or_default();
    let claim_status = inst.status.as_ref().and_then(|s| s.claim.clone());
    let mut claimed = match &claim_status {
        Some(cl) => k.claimed(pool_ns, tpl, &cl.set, &uid),
        None => Vec::new(),
    };
    // A new instance for which the pool watch shows no claim and this process
    // made none has nothing claimed (a claim by an earlier leader is in the
    // watch long before this process could lead): no list of the pool
    // namespace's pods on every warm start.
    let known_unclaimed = claim_status.is_none() && !ctx.pools.claimed_lately(&uid) && k.none_claimed_for(&uid);
    let may_have = claim_status.is_some() || (tpl.spec.warm_pool.is_some() && !started_cold);
    if claimed.is_empty() && !known_unclaimed && may_have {
        // Not (yet) in the cache, or claimed by an earlier reconcile that did
        // not get to write the status: the API server has the last word.
        claimed = claimed_for(&ctx.client, pool_ns, &uid).await?;
    }
    let set = claimed.first().and_then(|p| p.labels().get(resources::vocabulary::POOL_SET).cloned());
    match (claim_status, set) {
        // Claimed by an earlier reconcile that did not get to write the status.
        (None, Some(set)) => Ok((Some(claim_at(inst, pool_ns, set)), claimed)),
        (status, _) => Ok((status, claimed)),
    }
}

/// A claim of `set` now, with the time since the start was asked.
fn claim_at(inst: &Instance, pool_ns: &str, set: String) -> Claim {
    let now = Timestamp::now();
    let latency_ms = requested_at(inst).map_or(0.0, |f| f.duration_until(now).as_secs_f64().max(0.0) * 1000.0);
    Claim { namespace: pool_ns.to_string(), set, claimed: MicroTime(now), latency_ms }
}

/// A warm instance: its claimed set gets the instance's Services and
/// policies in the pool namespace; status comes from the claimed pods.
pub async fn finish(
    ctx: &Context,
    inst: &Instance,
    world: &World,
    claim: Claim,
    pods: Vec<Pod>,
    expires: Option<Timestamp>,
) -> Result<Action, Error> {
    let (tpl, tenant) = (&world.template, &world.tenant);
    let pool_ns = &ctx.settings.pool_namespace;
    let unbuildable = |p: Vec<resources::FieldProblem>| {
        Error::Waiting(format!(
            "cannot build the claimed set's objects: {}",
            p.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ")
        ))
    };
    let inst_ns = inst.namespace().unwrap_or_default();
    let access = crate::pool::build::vpn_access(tpl, tenant, &inst_ns, pool_ns).map_err(unbuildable)?;
    if let Some(p) = access {
        grant_vpn_access(ctx, p).await?;
    }
    let services = crate::pool::build::claimed_services(tpl, &claim.set, inst, &tenant.name_any(), pool_ns)
        .map_err(unbuildable)?;
    let svcs = Api::<Service>::namespaced(ctx.client.clone(), pool_ns);
    let applied =
        apply_all(ctx, inst, &svcs, |k, ns, n| k.services.get(ns, n).map(|b| b.meta.clone()), &services).await?;
    let services = service_briefs(ctx.caches()?, &services, applied);
    let pods: Vec<PodBrief> = pods.iter().map(PodBrief::of_labelled).collect();
    let mut s = observe(inst, tpl, &pods, &services, &claim.set, pool_ns, expires);
    s.warm = Some(true);
    let personal = tpl.spec.warm_pool.as_ref().is_some_and(|p| p.personalize == Personalize::Api);
    let msg = format!(
        "claimed pod set {} from the warm pool in {:.1} ms{}",
        claim.set,
        claim.latency_ms,
        if personal { "; its pods fetch their values from GET /v1/claim" } else { "" }
    );
    let old = inst.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    s.conditions.push(cond(WARM_START, true, "Claimed", &msg, &old, inst.metadata.generation));
    s.claim = Some(claim);
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst_ns);
    let next = next_look(&s, tpl, expires);
    write_status(ctx, &api, inst, s).await?;
    Ok(next)
}

/// Applies a tenant's VPN access to its claimed pods of a template, unless
/// this process sent the same one lately ([`crate::sent::Sent`]): shared by
/// all the tenant's claims of the template, it is written at the first.
async fn grant_vpn_access(ctx: &Context, policy: NetworkPolicy) -> Result<(), Error> {
    let (ns, name) = (policy.metadata.namespace.clone().unwrap_or_default(), policy.name_any());
    let key = format!("{ns}/{name}");
    let desired = serde_json::to_value(&policy).ok();
    if ctx.vpn_access.fresh(&key, &desired) {
        return Ok(());
    }
    let api = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ns);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&policy)).await?;
    ctx.vpn_access.sent(&key, desired);
    Ok(())
}
