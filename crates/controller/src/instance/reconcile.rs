//! The instance reconciler: limits, generated secrets, apply (server-side),
//! status from the pods (watched, never polled), TTL expiry on a timer,
//! self-healing through owned-object watches, and Stopping on deletion.

use super::apply::{apply_all, service_briefs};
use super::build::{Input, build, generate_value, generated_keys};
use super::cache::{Caches, SecretBrief, ServiceBrief};
use super::cleanup::{Cleaning, delete_instance_objects, sweep_orphans};
use super::phase::{PodBrief, aggregate_briefs};
use super::status::{base_status, cond, key, refusal, refused, requested_at, write_status};
use crate::config::Settings;
use crate::drift::Drift;
use crate::events::Events;
use crate::labels::{FIELD_MANAGER, TENANT};
use crate::last_write::{LastWrite, add_finalizer};
use crate::metrics::Metrics;
use crate::pool::Pools;
use crate::pool::claim::{Outcome, claim, claimed_for};
use crate::quota;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use resources::admission::{instance_problems, template_problems};
use resources::instance::{Claim, EndpointStatus, InstancePhase, InstanceStatus};
use resources::template::Personalize;
use resources::template::parse_duration;
use resources::{Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

pub const FINALIZER: &str = resources::vocabulary::INSTANCE_FINALIZER;
/// How long an expired instance stays visible before it is deleted.
pub const RETENTION: Duration = Duration::from_secs(60);

pub use crate::error::Error;

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub pools: Arc<Pools>,
    pub metrics: Arc<Metrics>,
    pub(super) events: Events,
    pub(super) drift: Drift,
    /// The watch caches reconciles read from (set when the controller runs;
    /// without them, as in some tests, everything is read from the API server).
    pub(super) caches: std::sync::OnceLock<Caches>,
    /// Instances as this controller's last finalizer or status write left them.
    pub(super) written: Arc<LastWrite<Instance>>,
    /// Instances whose objects this process deleted for their cleanup.
    cleaning: Cleaning,
    /// This controller's own writes, whose watch events trigger nothing.
    pub(super) echoes: Arc<crate::echo_filter::EchoFilter>,
    /// The tenant controller's Tenant and namespace stores, when it runs in
    /// this process (otherwise this controller watches them itself).
    tenant_stores: std::sync::OnceLock<crate::tenant::Stores>,
    /// Instances the quota refused, until they may try again.
    refusals: quota::Refusals,
    /// Failed reconciles per instance, for the retry back-off.
    failures: crate::backoff::Failures,
    /// Tenants' VPN access to their claimed warm pods, as last applied.
    vpn_access: crate::sent::Sent,
}

impl Context {
    /// The instances (namespace/name) of `template` in the watch cache, or
    /// `None` while the cache is not there or not yet filled.
    pub fn instances_of(&self, template: &str) -> Option<Vec<String>> {
        let k = self.caches.get().filter(|k| crate::cache::ready(&k.instances))?;
        let users = k.instances.state_filter(|i| i.spec.template == template);
        Some(users.iter().map(|i| format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any())).collect())
    }

    /// The uid of the instance `ns/name` in the watch cache, if it shows one.
    pub fn instance_uid(&self, ns: &str, name: &str) -> Option<String> {
        let k = self.caches.get().filter(|k| crate::cache::ready(&k.instances))?;
        let i = k.instances.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))?;
        i.metadata.uid.clone()
    }

    /// Whether any node carries a role, from the node watch (None while the
    /// controller does not run or the watch has not listed the nodes).
    pub fn any_node_has_role(&self) -> Option<bool> {
        self.caches.get().and_then(Caches::any_node_has_role)
    }

    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_pools(client, settings, Arc::default(), metrics)
    }

    /// A context sharing warm-pool state with the pool reconciler.
    pub fn with_pools(client: Client, settings: Settings, pools: Arc<Pools>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            events: Events::new(client.clone(), metrics.clone()),
            client,
            settings,
            pools,
            metrics,
            drift: Drift::default(),
            caches: std::sync::OnceLock::new(),
            written: Arc::default(),
            cleaning: Cleaning::default(),
            echoes: Arc::default(),
            tenant_stores: std::sync::OnceLock::new(),
            refusals: quota::Refusals::default(),
            failures: crate::backoff::Failures::default(),
            vpn_access: crate::sent::Sent::default(),
        })
    }

    /// Reads Tenants and their namespaces from the tenant controller's
    /// watches (`tenant::Watches::stores`) instead of watching them again.
    /// Takes effect when called before [`run`].
    pub fn read_tenants_from(&self, stores: crate::tenant::Stores) {
        let _ = self.tenant_stores.set(stores);
    }
}

/// The condition saying whether the instance started warm, and why not.
const WARM_START: &str = "WarmStart";

/// The instance is Pending because the tenant's quota does not allow it
/// (`why`); it is looked at again after [`quota::Refusals::RETRY`].
async fn over_quota(ctx: &Context, api: &Api<Instance>, inst: &Instance, why: &str) -> Result<Action, Error> {
    let msg = format!("the tenant's quota does not allow this instance: {why}");
    write_status(ctx, api, inst, base_status(inst, InstancePhase::Pending, "QuotaExceeded", &msg)).await?;
    Ok(Action::requeue(quota::Refusals::RETRY))
}

/// When a Failed instance failed (its Ready condition's transition), if it is Failed.
fn failed_since(inst: &Instance) -> Option<Timestamp> {
    let s = inst.status.as_ref().filter(|s| s.phase == Some(InstancePhase::Failed))?;
    Some(
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.last_transition_time.0)
            .unwrap_or_else(Timestamp::now),
    )
}

/// A Failed instance gives its pods and Services back at once (and with them
/// the tenant's quota), keeps its status to be read for
/// [`Settings::failed_retention`](crate::config::Settings::failed_retention),
/// and is deleted then. Nothing of it is started again.
async fn release_failed(
    ctx: &Context,
    api: &Api<Instance>,
    inst: &Instance,
    since: Timestamp,
) -> Result<Action, Error> {
    let released = inst.status.as_ref().is_some_and(|s| s.pods.is_empty() && s.endpoints.is_empty());
    if !released {
        delete_instance_objects(&ctx.client, inst, &ctx.settings.pool_namespace).await?;
        let mut s = inst.status.clone().unwrap_or_default();
        s.pods.clear();
        s.endpoints.clear();
        let retention = resources::duration::format(ctx.settings.failed_retention);
        if let Some(c) = s.conditions.iter_mut().find(|c| c.type_ == "Ready") {
            c.message = format!("{}; its pods were removed, and it is deleted {retention} after it failed", c.message);
        }
        write_status(ctx, api, inst, s).await?;
    }
    let gone_at =
        since.checked_add(SignedDuration::try_from(ctx.settings.failed_retention).unwrap_or_default()).unwrap_or(since);
    if Timestamp::now() >= gone_at {
        api.delete(&inst.name_any(), &DeleteParams::default()).await?;
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(Timestamp::now().duration_until(gone_at).unsigned_abs()))
}

/// When the instance expires (creation + ttl), if it has a lifetime.
fn expiry(inst: &Instance, tpl: Option<&Template>) -> Option<Timestamp> {
    let ttl = inst.spec.ttl.as_deref().or(tpl.and_then(|t| t.spec.ttl.as_deref())).and_then(parse_duration)?;
    let created = inst.metadata.creation_timestamp.as_ref()?.0;
    // Bounded (durations read at most ten years), and checked all the same.
    created.checked_add(SignedDuration::try_from(ttl).ok()?).ok()
}

/// Values for the instance Secret: kept when they exist, generated otherwise.
async fn generated_values(
    ctx: &Context,
    ns: &str,
    inst: &str,
    tpl: &Template,
) -> Result<BTreeMap<String, String>, Error> {
    if generated_keys(tpl).is_empty() {
        return Ok(BTreeMap::new());
    }
    let name = format!("{inst}-secrets");
    let have: BTreeMap<String, String> = match ctx.caches.get().and_then(|k| k.secrets.get(ns, &name)) {
        Some(s) => s.values.clone(),
        None => Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .get_opt(&name)
            .await?
            .map(|s| SecretBrief::of(&s).values)
            .unwrap_or_default(),
    };
    let mut rng = rand::rng();
    Ok(generated_keys(tpl)
        .into_iter()
        .map(|(k, g)| {
            let v = have.get(&k).cloned().unwrap_or_else(|| generate_value(&g, |n| rng.random_range(0..n)));
            (k, v)
        })
        .collect())
}

/// A cluster-scoped object from the cache, or (a miss) from the API server.
async fn cached_or_get<K>(cached: Option<Arc<K>>, client: &Client, name: &str) -> Result<Option<Arc<K>>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope> + Clone + DeserializeOwned + Debug,
{
    match cached {
        Some(o) => Ok(Some(o)),
        None => Ok(Api::<K>::all(client.clone()).get_opt(name).await?.map(Arc::new)),
    }
}

async fn apply(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let c = &ctx.client;
    let ns = inst.namespace().unwrap_or_default();
    let name = inst.name_any();
    let api: Api<Instance> = Api::namespaced(c.clone(), &ns);
    let caches = ctx.caches.get();
    let tpl = cached_or_get(caches.and_then(|k| k.template(&inst.spec.template)), c, &inst.spec.template).await?;
    let Some(tpl) = tpl else {
        let msg = format!("template {:?} does not exist", inst.spec.template);
        write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, "TemplateInvalid", &msg)).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let namespace: Option<Arc<Namespace>> = cached_or_get(caches.and_then(|k| k.namespace(&ns)), c, &ns).await?;
    if namespace.as_ref().is_some_and(|n| n.metadata.deletion_timestamp.is_some()) {
        // The tenant is being deleted: its namespace takes the instance and
        // everything of it along, and refuses anything new (on a real API
        // server, every such write is a 403 it still has to serve).
        return Ok(Action::await_change());
    }
    let tenant_name = namespace.and_then(|n| n.labels().get(TENANT).cloned());
    let tenant = match tenant_name {
        Some(t) => cached_or_get(caches.and_then(|k| k.tenant(&t)), c, &t).await?,
        None => None,
    };
    let Some(tenant) = tenant else {
        let msg = format!("namespace {ns} does not belong to a Paddock tenant");
        write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, "NotATenantNamespace", &msg)).await?;
        return Ok(Action::await_change());
    };
    if let Some(since) = failed_since(&inst) {
        return release_failed(&ctx, &api, &inst, since).await;
    }
    // Lifetime: past expiry the instance's objects go; the Instance follows after a retention.
    let expires = expiry(&inst, Some(&tpl));
    if let Some(at) = expires
        && Timestamp::now() >= at
    {
        delete_instance_objects(c, &inst, &ctx.settings.pool_namespace).await?;
        let mut s =
            base_status(&inst, InstancePhase::Expired, "Expired", "the instance's time ran out; its pods were removed");
        s.expires = Some(Time(at));
        s.pods.clear();
        s.endpoints.clear();
        write_status(&ctx, &api, &inst, s).await?;
        let gone_at = at.checked_add(SignedDuration::try_from(RETENTION).unwrap_or_default()).unwrap_or(at);
        if Timestamp::now() >= gone_at {
            api.delete(&name, &DeleteParams::default()).await?;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Timestamp::now().duration_until(gone_at).unsigned_abs()));
    }
    // maxPerTenant: the oldest instances of the template win, deterministically
    // (by creation time, then name); its position is how many come before it.
    // An instance that got past this once (it has started, warm or cold) keeps
    // its place: newer instances never come before it, and lowering the limit
    // does not stop running instances (as a lowered ResourceQuota does not
    // evict pods). An instance being stopped no longer counts (its pods are
    // on their way out, and the API does not count it either), so a stop and
    // a new start at once start the new one. Checked once per instance, not
    // on every pod change.
    fn key(i: &Instance) -> (Option<Timestamp>, Option<&str>) {
        (i.metadata.creation_timestamp.as_ref().map(|t| t.0), i.metadata.name.as_deref())
    }
    let admitted = inst.status.as_ref().is_some_and(|s| s.warm.is_some());
    let max = tpl.spec.max_per_tenant as usize;
    let mine = key(&inst);
    let before = |i: &Instance| {
        i.metadata.namespace.as_deref() == Some(ns.as_str())
            && i.spec.template == inst.spec.template
            && i.metadata.deletion_timestamp.is_none()
            && key(i) < mine
    };
    if !admitted && tpl.metadata.deletion_timestamp.is_some() {
        let msg = format!("template {:?} is being deleted: no new instance of it starts", inst.spec.template);
        write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, "TemplateDeleting", &msg)).await?;
        return Ok(Action::await_change());
    }
    let position = match caches {
        _ if admitted => 0,
        Some(k) if k.instances.len() <= max => 0,
        Some(k) => k.instances.state_filter(|i| before(i)).len(),
        None => api.list(&ListParams::default()).await?.items.iter().filter(|i| before(i)).count(),
    };
    if position >= max {
        let msg = format!(
            "the tenant already runs {} instance(s) of {:?}, its limit",
            tpl.spec.max_per_tenant, inst.spec.template
        );
        write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, "LimitReached", &msg)).await?;
        return Ok(Action::await_change());
    }
    let mut problems = template_problems(&tpl, &ctx.settings.template_policy());
    // The template's own problems come first and name the reason.
    let reason = if problems.is_empty() { "InvalidSpec" } else { "TemplateInvalid" };
    problems.extend(instance_problems(&tpl, &inst, ctx.settings.max_instance_ttl));
    if !problems.is_empty() {
        let msg = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
        write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, reason, &msg)).await?;
        return Ok(Action::await_change());
    }
    // A warm start: pods already claimed for this instance, or a claim now
    // (unless the instance already started cold).
    let pool_ns = ctx.settings.pool_namespace.clone();
    let uid = inst.metadata.uid.clone().unwrap_or_default();
    let mut claim_status = inst.status.as_ref().and_then(|s| s.claim.clone());
    let started_cold = inst.status.as_ref().and_then(|s| s.warm) == Some(false);
    let mut claimed = match (caches, &claim_status) {
        (Some(k), Some(cl)) => k.claimed(&pool_ns, &tpl, &cl.set, &uid),
        _ => Vec::new(),
    };
    // A new instance, for which the pool watch shows no claim and this
    // process made none: nothing is claimed for it. (A claim by an earlier
    // leader is in the watch long before this process could lead.) That
    // saves a list of the pool namespace's pods on every warm start.
    let surely_unclaimed =
        claim_status.is_none() && !ctx.pools.claimed_lately(&uid) && caches.is_some_and(|k| k.none_claimed_for(&uid));
    if claimed.is_empty()
        && !surely_unclaimed
        && (claim_status.is_some() || (tpl.spec.warm_pool.is_some() && !started_cold))
    {
        // Not (yet) in the cache, or claimed by an earlier reconcile that did
        // not get to write the status: the API server has the last word.
        claimed = claimed_for(c, &pool_ns, &uid).await?;
    }
    if claim_status.is_none()
        && let Some(set) = claimed.first().and_then(|p| p.labels().get(crate::pool::labels::SET).cloned())
    {
        // Claimed by an earlier reconcile that did not get to write the status.
        let now = Timestamp::now();
        let latency_ms = requested_at(&inst).map_or(0.0, |f| f.duration_until(now).as_secs_f64().max(0.0) * 1000.0);
        claim_status = Some(Claim { namespace: pool_ns.clone(), set, claimed: MicroTime(now), latency_ms });
    }
    let mut cold_reason = None;
    if claimed.is_empty() && !started_cold && tpl.spec.warm_pool.is_some() {
        if tenant.spec.node_role == Some(resources::tenant::NodeRole::Shared)
            && tpl.spec.node_role != Some(resources::tenant::NodeRole::Shared)
        {
            cold_reason = Some((
                "TenantPlacement",
                "the tenant runs on shared nodes only and the pool's pods may be on task nodes; started cold"
                    .to_string(),
            ));
        } else {
            let cached = crate::pool::claim::Cached {
                pool_pods: caches.map(|k| &k.pool_pods),
                namespace_usage: caches.and_then(|k| k.namespace_usage(&ns)),
            };
            match claim(c, &ctx.pools, &pool_ns, cached, &tpl, &tenant, &inst).await? {
                Outcome::Claimed { set, pods } => {
                    let now = Timestamp::now();
                    let from = requested_at(&inst).unwrap_or(now);
                    let latency_ms = from.duration_until(now).as_secs_f64().max(0.0) * 1000.0;
                    tracing::info!(instance = %name, namespace = %ns, set = %set, latency_ms, "claimed a warm pod set");
                    claim_status = Some(Claim { namespace: pool_ns.clone(), set, claimed: MicroTime(now), latency_ms });
                    claimed = pods;
                }
                Outcome::Empty => {
                    cold_reason =
                        Some(("PoolEmpty", "the template's warm pool had no Ready pod set; started cold".to_string()));
                }
                Outcome::OverQuota(why) => return over_quota(&ctx, &api, &inst, &why).await,
            }
        }
    }
    let values = generated_values(&ctx, &ns, &name, &tpl).await?;
    let any_role = match caches.and_then(Caches::any_node_has_role) {
        Some(any) => any,
        None => crate::noderoles::any_node_has_role(c).await?,
    };
    let input = Input {
        template: &tpl,
        tenant: &tenant,
        instance: &inst,
        settings: &ctx.settings,
        any_node_has_role: any_role,
        generated: &values,
    };
    let desired = match build(&input) {
        Ok(d) => d,
        Err(problems) => {
            // The template was checked above: what building refuses is the instance's.
            let msg = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
            let reason = "InvalidSpec";
            write_status(&ctx, &api, &inst, base_status(&inst, InstancePhase::Failed, reason, &msg)).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(s) = &desired.secret {
        let secrets = Api::<Secret>::namespaced(c.clone(), &ns);
        apply_all(
            &ctx,
            &inst,
            &secrets,
            |k, ns, n| k.secrets.get(ns, n).map(|s| s.meta.clone()),
            std::slice::from_ref(s),
        )
        .await?;
    }
    if let Some(cl) = claim_status.filter(|_| !claimed.is_empty()) {
        return warm(&inst, &ctx, &tpl, &tenant, cl, claimed, expires).await;
    }
    let cms = Api::<ConfigMap>::namespaced(c.clone(), &ns);
    apply_all(&ctx, &inst, &cms, |k, ns, n| k.config_maps.get(ns, n).map(|m| (*m).clone()), &desired.config_maps)
        .await?;
    let pols = Api::<NetworkPolicy>::namespaced(c.clone(), &ns);
    apply_all(&ctx, &inst, &pols, |k, ns, n| k.policies.get(ns, n).map(|m| (*m).clone()), &desired.policies).await?;
    let svcs = Api::<Service>::namespaced(c.clone(), &ns);
    let applied =
        apply_all(&ctx, &inst, &svcs, |k, ns, n| k.services.get(ns, n).map(|b| b.meta.clone()), &desired.services)
            .await?;
    let services = service_briefs(&ctx, &desired.services, applied);
    let pods_api: Api<Pod> = Api::namespaced(c.clone(), &ns);
    // The pods as they are: from the cache, or (a miss) the API server. A
    // new instance (no pod in its status) whose pods a listed cache does not
    // show has none: that saves a read per pod on every cold start, and at
    // worst (a pod made a moment ago that the watch has not shown yet) the
    // apply below is sent again and changes nothing.
    let new = inst.status.as_ref().is_none_or(|s| s.pods.is_empty());
    let mut current = Vec::with_capacity(desired.pods.len());
    for p in &desired.pods {
        let pname = p.metadata.name.clone().unwrap_or_default();
        current.push(match caches.map(|k| (k.pods.get(&ns, &pname), k.pods.ready())) {
            Some((Some(have), _)) => Some((*have).clone()),
            Some((None, true)) if new => None,
            _ => pods_api.get_opt(&pname).await?.as_ref().map(PodBrief::of_labelled),
        });
    }
    if quota::limits_pods(&tenant) && current.iter().all(Option::is_none) {
        let cpu = quantity::Quantity::parse(
            tenant.spec.defaults.cpu_request.as_deref().unwrap_or(&ctx.settings.default_cpu_request),
        )
        .unwrap_or_default();
        let mem = quantity::Quantity::parse(
            tenant.spec.defaults.memory_request.as_deref().unwrap_or(&ctx.settings.default_memory_request),
        )
        .unwrap_or_default();
        let more = desired
            .pods
            .iter()
            .filter_map(|p| p.spec.as_ref())
            .map(|s| quota::Usage::of_spec(s, cpu, mem))
            .fold(quota::Usage::default(), |a, b| a + b);
        // More than the whole quota: said as such, without trying the pods.
        if let Some(why) = quota::beyond(&tenant, more, "it") {
            return over_quota(&ctx, &api, &inst, &why).await;
        }
        // The namespace's ResourceQuota does not see pods claimed from a pool:
        // with claimed pods, count the tenant as a whole before the first pod.
        let claimed_from = caches.map(|k| quota::Claimed { cache: &k.pool_pods, pools: &ctx.pools });
        let claimed_usage = quota::claimed_usage(c, &tenant.name_any(), &pool_ns, claimed_from).await?;
        if claimed_usage.pods > 0 {
            let cached = caches.and_then(|k| k.namespace_usage(&ns));
            let used = quota::namespace_usage(c, &ns, cached).await? + claimed_usage;
            if let Some(why) = quota::exceeded(&tenant, used, more) {
                return over_quota(&ctx, &api, &inst, &why).await;
            }
        }
    }
    if current.iter().all(Option::is_none)
        && let Some(left) = ctx.refusals.wait(&uid)
    {
        return Ok(Action::requeue(left));
    }
    // Template pod names (for the status and Events) and pod object names.
    let (mut created, mut made) = (Vec::new(), Vec::new());
    let mut pods = Vec::with_capacity(desired.pods.len());
    for (p, have) in desired.pods.iter().zip(current) {
        // Pod specs are immutable: an existing pod is kept as it is (drift in its
        // labels is repaired by re-creating it when deleted).
        if let Some(have) = have {
            pods.push(have);
            continue;
        }
        let pname = p.metadata.name.clone().unwrap_or_default();
        let w = ctx.echoes.writing(p);
        match pods_api.patch(&pname, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(p)).await {
            Ok(pod) => {
                w.wrote(&pod);
                let brief = PodBrief::of_labelled(&pod);
                created.push(brief.state.name.clone());
                made.push(pname);
                pods.push(brief);
            }
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {
                drop(w);
                quota::give_back(&pods_api, &made).await?;
                ctx.refusals.refused(&uid);
                return over_quota(&ctx, &api, &inst, &s.message).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !created.is_empty() {
        // Pods the status already knew about had been deleted: drift, repaired.
        let known: Vec<&str> = inst.status.iter().flat_map(|s| s.pods.iter().map(|p| p.name.as_str())).collect();
        let (again, first): (Vec<String>, Vec<String>) = created.into_iter().partition(|p| known.contains(&p.as_str()));
        let oref = inst.object_ref(&());
        if !first.is_empty() {
            let note = format!("created pod(s) {}", first.join(", "));
            ctx.events.record("Instance", oref.clone(), false, "Created", note);
        }
        if !again.is_empty() {
            let note = format!("pod(s) {} had been deleted; re-created them", again.join(", "));
            tracing::info!(instance = %name, namespace = %ns, pods = %again.join(","), "repaired drift");
            ctx.events.record("Instance", oref, false, "DriftRepaired", note);
        }
    }
    // Status from the pods and services as they are now.
    let mut s = observe(&inst, &tpl, &pods, &services, &name, &ns, expires);
    s.warm = Some(false);
    let warm_cond = match cold_reason {
        Some((reason, msg)) => {
            let old = inst.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
            Some(cond(WARM_START, false, reason, &msg, &old, inst.metadata.generation))
        }
        None => inst.status.as_ref().and_then(|st| st.conditions.iter().find(|c| c.type_ == WARM_START).cloned()),
    };
    s.conditions.extend(warm_cond);
    let next = requeue_after(expires, s.phase);
    write_status(&ctx, &api, &inst, s).await?;
    Ok(next)
}

/// While an instance is on its way (pending, scheduling, starting), it is
/// looked at again after this long even if no watch event comes: its own
/// writes trigger nothing (`echoes`), so a change this process missed would
/// otherwise leave the status behind until the next one.
const ON_THE_WAY_LOOK: Duration = Duration::from_secs(10);

/// When to reconcile again without a watch event: at expiry, and sooner while
/// the instance is on its way to Running.
fn requeue_after(expires: Option<Timestamp>, phase: Option<InstancePhase>) -> Action {
    let until_expiry = expires.map(|at| Timestamp::now().duration_until(at).unsigned_abs() + Duration::from_millis(50));
    let on_the_way =
        matches!(phase, None | Some(InstancePhase::Pending | InstancePhase::Scheduling | InstancePhase::Starting));
    if phase == Some(InstancePhase::Failed) {
        // Failed just now: the next look gives its pods back (release_failed).
        return Action::requeue(Duration::from_millis(200));
    }
    match (until_expiry, on_the_way) {
        (Some(d), true) => Action::requeue(d.min(ON_THE_WAY_LOOK)),
        (None, true) => Action::requeue(ON_THE_WAY_LOOK),
        (Some(d), false) => Action::requeue(d),
        (None, false) => Action::await_change(),
    }
}

/// A warm instance: its claimed set gets the instance's Services and
/// policies in the pool namespace; status comes from the claimed pods.
async fn warm(
    inst: &Instance,
    ctx: &Context,
    tpl: &Template,
    tenant: &Tenant,
    claim: Claim,
    pods: Vec<Pod>,
    expires: Option<Timestamp>,
) -> Result<Action, Error> {
    let c = &ctx.client;
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
    let svcs = Api::<Service>::namespaced(c.clone(), pool_ns);
    let applied =
        apply_all(ctx, inst, &svcs, |k, ns, n| k.services.get(ns, n).map(|b| b.meta.clone()), &services).await?;
    let services = service_briefs(ctx, &services, applied);
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
    let api: Api<Instance> = Api::namespaced(c.clone(), &inst.namespace().unwrap_or_default());
    let next = requeue_after(expires, s.phase);
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

/// Status from an instance's pods and Services as they are now; `stem` and
/// `ns` make the pods' DNS names (`<pod>.<stem>.<ns>.svc`).
fn observe(
    inst: &Instance,
    tpl: &Template,
    pods: &[PodBrief],
    services: &[ServiceBrief],
    stem: &str,
    ns: &str,
    expires: Option<Timestamp>,
) -> InstanceStatus {
    let was_running =
        matches!(inst.status.as_ref().and_then(|s| s.phase), Some(InstancePhase::Running | InstancePhase::Degraded));
    let outcome = aggregate_briefs(tpl.spec.pods.len(), pods, false, false, was_running);
    let mut s = base_status(inst, outcome.phase, outcome.reason, &outcome.message);
    s.pods = pods.iter().map(|p| p.state.clone()).collect();
    s.expires = expires.map(Time);
    let all = |f: fn(&PodBrief) -> bool| pods.len() == tpl.spec.pods.len() && pods.iter().all(f);
    if s.scheduled.is_none() && all(|p| p.state.node.is_some()) {
        s.scheduled = Some(MicroTime(Timestamp::now()));
    }
    if s.pulled.is_none() && all(|p| p.state.phase.as_deref() == Some("Running")) {
        s.pulled = Some(MicroTime(Timestamp::now()));
    }
    if s.ready.is_none() && outcome.phase == InstancePhase::Running {
        s.ready = Some(MicroTime(Timestamp::now()));
    }
    s.endpoints = endpoints(tpl, stem, ns, services);
    s
}

fn endpoints(tpl: &Template, inst: &str, ns: &str, services: &[ServiceBrief]) -> Vec<EndpointStatus> {
    let mut out = Vec::new();
    for p in &tpl.spec.pods {
        for port in &p.ports {
            let mut e = EndpointStatus {
                pod: p.name.clone(),
                port: port.name.clone(),
                cluster_dns: Some(format!("{}.{inst}.{ns}.svc:{}", p.name, port.port)),
                ..Default::default()
            };
            for svc in services.iter().filter(|s| s.pod.as_deref() == Some(p.name.as_str())) {
                if let Some((_, node_port, svc_port)) =
                    svc.ports.iter().find(|(name, _, _)| name.as_deref() == Some(port.name.as_str()))
                {
                    e.node_port = e.node_port.or(*node_port);
                    if let Some(ip) = &svc.load_balancer {
                        e.external_address = Some(format!("{ip}:{svc_port}"));
                    }
                }
            }
            out.push(e);
        }
    }
    out
}

async fn cleanup(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.drift.forget(inst.metadata.uid.as_deref().unwrap_or_default());
    write_status(
        &ctx,
        &api,
        &inst,
        base_status(&inst, InstancePhase::Stopping, "Stopping", "removing the instance's pods"),
    )
    .await?;
    let left = ctx.cleaning.delete(&ctx.client, &inst, &ctx.settings.pool_namespace).await?;
    if left > 0 {
        return Err(Error::Waiting(format!("{left} pods still terminating")));
    }
    // The finalizer goes next and the instance with it: nothing to wait for.
    ctx.written.forget(inst.as_ref());
    Ok(Action::await_change())
}

async fn reconcile(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let metrics = ctx.metrics.clone();
    let result = metrics.reconcile("instance", run_finalizer(inst.clone(), ctx.clone())).await;
    match &result {
        Ok(_) => ctx.failures.succeeded(&key(&inst)),
        Err(e) => {
            if let Some(why) = refusal(e) {
                refused(&ctx, inst, &why).await;
            }
        }
    }
    result
}

async fn run_finalizer(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    let inst = ctx.written.newest(inst);
    if inst.metadata.deletion_timestamp.is_none() && !inst.finalizers().iter().any(|f| f == FINALIZER) {
        // A new instance: add the finalizer and go on in the same reconcile,
        // instead of waiting for the patch's watch event to come back through
        // the queue — that wait was most of a warm start.
        let with = ctx.written.write(&ctx.echoes, inst.as_ref(), add_finalizer(&api, inst.as_ref(), FINALIZER)).await?;
        return apply(with, ctx).await;
    }
    let res = finalizer(&api, FINALIZER, inst, |ev| async {
        match ev {
            Finalizer::Apply(i) => apply(i, ctx.clone()).await,
            Finalizer::Cleanup(i) => cleanup(i, ctx.clone()).await,
        }
    })
    .await;
    crate::error::finished(res)
}

fn error_policy(inst: Arc<Instance>, err: &Error, ctx: Arc<Context>) -> Action {
    match err {
        Error::Waiting(why) => {
            tracing::debug!(instance = %inst.name_any(), %why, "waiting");
            Action::requeue(Duration::from_millis(500))
        }
        e => {
            let delay = ctx.failures.failed(&key(&inst));
            tracing::warn!(instance = %inst.name_any(), error = %e, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// Runs the instance controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let c = ctx.client.clone();
    if let Err(e) = sweep_orphans(&c, None).await {
        tracing::warn!(error = %e, "orphan sweep failed; owner references still apply");
    }
    // Without managedFields, like every watch cache here (nothing reads them).
    let (store, instances) =
        crate::cache::reflect(Api::<Instance>::all(c.clone()), watcher::Config::default(), crate::cache::whole);
    let instances = instances.applied_objects();
    let instances = ctx.written.primary_events(&ctx.echoes, instances);
    let controller = Controller::for_stream(instances, store).with_config(ctx.settings.controller_config());
    ctx.metrics.watch_instances(controller.store());
    let (controller, caches, background) =
        super::cache::wire(controller, &c, &ctx.settings.pool_namespace, &ctx.echoes, ctx.tenant_stores.get().cloned());
    let _ = ctx.caches.set(caches);
    let controller =
        controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx.clone()).for_each(|r| {
            ctx.metrics.run_result("instance", &r);
            if let Err(e) = r {
                tracing::debug!(error = %e, "instance reconcile error");
            }
            futures::future::ready(())
        });
    // The read-only watches live as long as the controller (which ends on shutdown).
    tokio::select! {
        _ = controller => {}
        _ = background => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_on_its_way_is_looked_at_again_soon() {
        let far = Some(Timestamp::now() + SignedDuration::from_hours(1));
        let soon = Some(Timestamp::now() + SignedDuration::from_secs(2));
        let starting = Some(InstancePhase::Starting);
        let running = Some(InstancePhase::Running);
        assert_eq!(requeue_after(far, starting), Action::requeue(ON_THE_WAY_LOOK));
        assert_eq!(requeue_after(None, None), Action::requeue(ON_THE_WAY_LOOK));
        assert_eq!(requeue_after(None, running), Action::await_change());
        // Settled: only its expiry brings it back.
        assert_ne!(requeue_after(far, running), Action::requeue(ON_THE_WAY_LOOK));
        // On its way but expiring sooner than the look: the expiry wins.
        assert_ne!(requeue_after(soon, starting), Action::requeue(ON_THE_WAY_LOOK));
        assert_ne!(requeue_after(soon, starting), Action::await_change());
    }
}
