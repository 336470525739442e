//! Cold starts: an instance's own ConfigMaps, NetworkPolicies, Services and
//! pods in its namespace, with the tenant's quota counted across namespaces
//! before the first pod, all or nothing when the quota refuses one, and the
//! status from the pods as they are.

use super::apply::{apply_all, service_briefs};
use super::build::Desired;
use super::cache::ServiceBrief;
use super::context::{Context, Error};
use super::observe::{WARM_START, next_look, observe};
use super::phase::PodBrief;
use super::status::{cond, over_quota, write_status};
use super::world::World;
use crate::labels::FIELD_MANAGER;
use crate::quota;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use quantity::Quantity;
use resources::Instance;
use resources::usage::{self, Usage};

/// Starts (or keeps) the instance on its own pods; `why_not_warm` names why
/// a template with a warm pool started cold.
pub async fn start(
    ctx: &Context,
    inst: &Instance,
    world: &World,
    desired: &Desired,
    why_not_warm: Option<(&'static str, String)>,
    expires: Option<Timestamp>,
) -> Result<Action, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let services = apply_objects(ctx, inst, &ns, desired).await?;
    let current = current_pods(ctx, inst, &ns, desired).await?;
    if current.iter().all(Option::is_none) {
        if let Some(why) = quota_refuses(ctx, &ns, world, desired).await? {
            return over_quota(ctx, inst, &why).await;
        }
        if let Some(left) = ctx.refusals.wait(inst.metadata.uid.as_deref().unwrap_or_default()) {
            return Ok(Action::requeue(left));
        }
    }
    let pods = match create_pods(ctx, inst, &ns, desired, current).await? {
        Ok(pods) => pods,
        Err(refused) => return over_quota(ctx, inst, &refused).await,
    };
    let mut s = observe(inst, &world.template, &pods, &services, &inst.name_any(), &ns, expires);
    s.warm = Some(false);
    let old = inst.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let warm_cond = match why_not_warm {
        Some((reason, msg)) => Some(cond(WARM_START, false, reason, &msg, &old, inst.metadata.generation)),
        None => old.iter().find(|c| c.type_ == WARM_START).cloned(),
    };
    s.conditions.extend(warm_cond);
    let next = next_look(&s, &world.template, expires);
    write_status(ctx, &Api::namespaced(ctx.client.clone(), &ns), inst, s).await?;
    Ok(next)
}

/// Applies the ConfigMaps, NetworkPolicies and Services; the Services as they are.
async fn apply_objects(
    ctx: &Context,
    inst: &Instance,
    ns: &str,
    desired: &Desired,
) -> Result<Vec<ServiceBrief>, Error> {
    let c = &ctx.client;
    let cms = Api::<ConfigMap>::namespaced(c.clone(), ns);
    apply_all(ctx, inst, &cms, |k, ns, n| k.config_maps.get(ns, n).map(|m| (*m).clone()), &desired.config_maps).await?;
    let pols = Api::<NetworkPolicy>::namespaced(c.clone(), ns);
    apply_all(ctx, inst, &pols, |k, ns, n| k.policies.get(ns, n).map(|m| (*m).clone()), &desired.policies).await?;
    let svcs = Api::<Service>::namespaced(c.clone(), ns);
    let applied =
        apply_all(ctx, inst, &svcs, |k, ns, n| k.services.get(ns, n).map(|b| b.meta.clone()), &desired.services)
            .await?;
    Ok(service_briefs(ctx.caches()?, &desired.services, applied))
}

/// The desired pods as they are: from the cache, or (a miss) the API server.
/// A new instance (no pod in its status) whose pods a listed cache does not
/// show has none: that saves a read per pod on every cold start, and at
/// worst (a pod made a moment ago that the watch has not shown yet) the
/// apply is sent again and changes nothing.
async fn current_pods(
    ctx: &Context,
    inst: &Instance,
    ns: &str,
    desired: &Desired,
) -> Result<Vec<Option<PodBrief>>, Error> {
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let new = inst.status.as_ref().is_none_or(|s| s.pods.is_empty());
    let k = ctx.caches()?;
    let mut current = Vec::with_capacity(desired.pods.len());
    for p in &desired.pods {
        let pname = p.metadata.name.clone().unwrap_or_default();
        current.push(match (k.pods.get(ns, &pname), k.pods.ready()) {
            (Some(have), _) => Some((*have).clone()),
            (None, true) if new => None,
            _ => pods_api.get_opt(&pname).await?.as_ref().map(PodBrief::of_labelled),
        });
    }
    Ok(current)
}

/// Why the tenant's quota does not allow the instance's pods, if it does
/// not: more than the whole quota, or (when the tenant has pods claimed from
/// a pool, which the namespace's ResourceQuota does not see) more than is
/// left of it across namespaces.
async fn quota_refuses(ctx: &Context, ns: &str, world: &World, desired: &Desired) -> Result<Option<String>, Error> {
    let tenant = &world.tenant;
    if !usage::limits_pods(tenant) {
        return Ok(None);
    }
    let default = |own: &Option<String>, installation: &str| {
        Quantity::parse(own.as_deref().unwrap_or(installation)).unwrap_or_default()
    };
    let cpu = default(&tenant.spec.defaults.cpu_request, &ctx.settings.default_cpu_request);
    let mem = default(&tenant.spec.defaults.memory_request, &ctx.settings.default_memory_request);
    let more = desired
        .pods
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .map(|s| Usage::of_spec(s, cpu, mem))
        .fold(Usage::default(), |a, b| a + b);
    if let Some(why) = usage::beyond(tenant, more, "it") {
        return Ok(Some(why));
    }
    let (c, k, pool_ns) = (&ctx.client, ctx.caches()?, &ctx.settings.pool_namespace);
    let claimed_from = quota::Claimed { cache: &k.pool_pods, pools: &ctx.pools };
    let claimed_usage = quota::claimed_usage(c, &tenant.name_any(), pool_ns, claimed_from).await?;
    if claimed_usage.pods == 0 {
        return Ok(None);
    }
    let cached = k.namespace_usage(ns);
    let used = quota::namespace_usage(c, ns, cached).await? + claimed_usage;
    Ok(usage::exceeded(tenant, used, more))
}

/// Creates the pods that do not exist (pod specs are immutable: an existing
/// pod is kept as it is; drift in its labels is repaired by re-creating it
/// when deleted). All or nothing: when the quota refuses one, those created
/// before it are deleted, and the refusal's words come back.
async fn create_pods(
    ctx: &Context,
    inst: &Instance,
    ns: &str,
    desired: &Desired,
    current: Vec<Option<PodBrief>>,
) -> Result<Result<Vec<PodBrief>, String>, Error> {
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let (mut created, mut made) = (Vec::new(), Vec::new());
    let mut pods = Vec::with_capacity(desired.pods.len());
    for (p, have) in desired.pods.iter().zip(current) {
        if let Some(have) = have {
            pods.push(have);
            continue;
        }
        let pname = p.metadata.name.clone().unwrap_or_default();
        let w = ctx.ledger.writing(p);
        match pods_api.patch(&pname, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(p)).await {
            Ok(pod) => {
                w.wrote(&pod);
                let brief = PodBrief::of_labelled(&pod);
                created.push(brief.state.name.clone());
                made.push(pname);
                pods.push(brief);
            }
            // The API server's quota admission: its message is the only word of which quota refused.
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {
                drop(w);
                quota::give_back(&pods_api, &made).await?;
                ctx.refusals.refused(inst.metadata.uid.as_deref().unwrap_or_default());
                return Ok(Err(s.message));
            }
            Err(e) => return Err(e.into()),
        }
    }
    record_created(ctx, inst, created);
    Ok(Ok(pods))
}

/// Events for created pods: first starts, and pods the status knew about
/// that had been deleted (drift, repaired).
fn record_created(ctx: &Context, inst: &Instance, created: Vec<String>) {
    if created.is_empty() {
        return;
    }
    let known: Vec<&str> = inst.status.iter().flat_map(|s| s.pods.iter().map(|p| p.name.as_str())).collect();
    let (again, first): (Vec<String>, Vec<String>) = created.into_iter().partition(|p| known.contains(&p.as_str()));
    let oref = inst.object_ref(&());
    if !first.is_empty() {
        let note = format!("created pod(s) {}", first.join(", "));
        ctx.events.record("Instance", oref.clone(), false, "Created", note);
    }
    if !again.is_empty() {
        let note = format!("pod(s) {} had been deleted; re-created them", again.join(", "));
        tracing::info!(instance = %inst.name_any(), namespace = %inst.namespace().unwrap_or_default(), pods = %again.join(","), "repaired drift");
        ctx.events.record("Instance", oref, false, "DriftRepaired", note);
    }
}
