//! The cluster reconciler's pipeline: accept (profile, quota) → SSH key →
//! build → apply what is missing or drifted → kubeconfig → audit → repair →
//! status. Deletion deletes the Cluster API objects and waits for them.
//!
//! Requests per look at a Running cluster (once per audit period): a GET of
//! its profile and of each Cluster API object (8, or 10 with a CNI), of the cluster's Secret,
//! a LIST of its Machines, and `/readyz` and a bounded node LIST on the
//! cluster itself; writes only when something changed.

use super::build::{self, Desired};
use super::repair::{self, Act};
use super::sealed::KeyRing;
use super::vault::Vault;
use crate::error::Error;
use crate::events::Events;
use crate::finalizers::{add_finalizer, remove_finalizer};
use crate::metrics::Metrics;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, Resource, ResourceExt};
use resources::cluster::{Cluster, ClusterHealth, ClusterProfile, ClusterStatus, SecurityGroupsStatus};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keeps a deleted Cluster until Cluster API has deleted its machines.
pub const FINALIZER: &str = "paddock.dev/cluster";

/// How often a cluster being provisioned or deleted is looked at.
const PROGRESS: Duration = Duration::from_secs(1);
/// How long the key ring is kept before it is read again (rotation).
const RING_TTL: Duration = Duration::from_secs(30);

pub struct Context {
    pub client: Client,
    pub settings: crate::config::Settings,
    pub metrics: Arc<Metrics>,
    events: Events,
    ring: tokio::sync::Mutex<Option<(Instant, KeyRing)>>,
}

impl Context {
    pub fn new(client: Client, settings: crate::config::Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        let events = Events::new(client.clone(), metrics.clone());
        Arc::new(Self { client, settings, metrics, events, ring: Default::default() })
    }

    async fn ring(&self) -> Result<KeyRing, Error> {
        let mut held = self.ring.lock().await;
        if let Some((at, ring)) = held.as_ref()
            && at.elapsed() < RING_TTL
        {
            return Ok(ring.clone());
        }
        let ring = KeyRing::load_or_create(&self.client, &self.settings.system_namespace).await?;
        *held = Some((Instant::now(), ring.clone()));
        Ok(ring)
    }

    fn event(&self, c: &Cluster, warning: bool, reason: &str, note: String) {
        self.events.record("Cluster", c.object_ref(&()), warning, reason, note);
    }
}

/// The dynamic API of a desired object's kind in `ns`.
pub fn dynamic(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: build::plural(kind),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn condition(
    old: &ClusterStatus,
    kind: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

fn set_condition(st: &mut ClusterStatus, c: Condition) {
    st.conditions.retain(|x| x.type_ != c.type_);
    st.conditions.push(c);
}

/// Why the cluster cannot be built as asked (reason, message), or its profile.
async fn accept(c: &Cluster, ctx: &Context) -> Result<Result<ClusterProfile, (&'static str, String)>, Error> {
    let Some(profile) = Api::<ClusterProfile>::all(ctx.client.clone()).get_opt(&c.spec.profile).await? else {
        return Ok(Err(("ProfileNotFound", format!("spec.profile: no ClusterProfile {:?}", c.spec.profile))));
    };
    // Quota and Cluster API were checked when this generation was accepted.
    let accepted = c.status.as_ref().is_some_and(|st| {
        st.observed_generation == c.metadata.generation
            && st.conditions.iter().any(|x| x.type_ == "Accepted" && x.status == "True")
    });
    let mut problems = profile.spec.validate();
    if !problems.is_empty() {
        let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Ok(Err((
            "ProfileInvalid",
            format!("ClusterProfile {:?} is invalid: {}", c.spec.profile, all.join("; ")),
        )));
    }
    problems = c.spec.validate_on(&profile.spec);
    if !problems.is_empty() {
        return Ok(Err(("Invalid", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))));
    }
    if accepted {
        return Ok(Ok(profile));
    }
    if let Some(why) = over_quota(c, ctx).await? {
        return Ok(Err(("QuotaExceeded", why)));
    }
    let served = ctx.client.list_api_group_resources(build::CAPI).await;
    if !served.is_ok_and(|l| l.resources.iter().any(|r| r.name == "clusters")) {
        return Ok(Err(("ClusterAPIMissing", format!("Cluster API is not installed: {} is not served", build::CAPI))));
    }
    if let Some(why) = infrastructure_missing(ctx, &profile).await {
        return Ok(Err(("InfrastructureMissing", why)));
    }
    Ok(Ok(profile))
}

/// Which of the profile's infrastructure kinds this API server does not
/// serve (its provider is not installed), if any: one discovery request per
/// API version named, made only when a generation is accepted.
async fn infrastructure_missing(ctx: &Context, profile: &ClusterProfile) -> Option<String> {
    let infra = &profile.spec.infrastructure;
    let mut wanted: Vec<&resources::cluster::ProviderObject> = vec![&infra.cluster, &infra.machine];
    wanted.extend(infra.worker_machine.as_ref());
    let mut versions: Vec<&str> = wanted.iter().map(|o| o.api_version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    let mut missing = Vec::new();
    for v in versions {
        let served = ctx.client.list_api_group_resources(v).await.ok();
        for o in wanted.iter().filter(|o| o.api_version == v) {
            if !served.as_ref().is_some_and(|l| l.resources.iter().any(|r| r.kind == o.kind)) {
                missing.push(format!("{} {}", o.api_version, o.kind));
            }
        }
    }
    missing.dedup();
    (!missing.is_empty()).then(|| {
        format!(
            "the infrastructure provider of ClusterProfile {:?} is not installed: {} not served",
            profile.name_any(),
            missing.join(", ")
        )
    })
}

/// Why the tenant's quota does not allow this cluster, if it does not:
/// `quota.clusters` (default 1) counts clusters made before it.
async fn over_quota(c: &Cluster, ctx: &Context) -> Result<Option<String>, Error> {
    let ns = c.namespace().unwrap_or_default();
    let Some(tenant) = resources::vocabulary::tenant_of_namespace(&ctx.settings.namespace_prefix, &ns) else {
        return Ok(Some(format!("namespace {ns:?} is not a tenant's")));
    };
    let Some(t) = Api::<resources::Tenant>::all(ctx.client.clone()).get_opt(&tenant).await? else {
        return Ok(Some(format!("tenant {tenant:?} does not exist")));
    };
    let all = Api::<Cluster>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?;
    Ok(resources::cluster::quota_problem(&t.spec.quota, &all.items, c))
}

/// Cluster API's `Ready` condition: (True?, reason, message).
type Mirrored = Option<(bool, String, String)>;

/// What the Cluster API objects say: (provisioned?, version, endpoint, mirrored condition).
fn observed(
    c: &Cluster,
    world: &[(Desired, Option<DynamicObject>)],
) -> (bool, Option<String>, Option<String>, Mirrored) {
    let find = |kind: &str| world.iter().find(|(d, _)| d.kind == kind).and_then(|(_, o)| o.as_ref()).map(|o| &o.data);
    let (Some(capi), Some(kcp), Some(md)) = (find("Cluster"), find("KubeadmControlPlane"), find("MachineDeployment"))
    else {
        return (false, None, None, None);
    };
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let provisioned = capi.pointer("/status/phase").and_then(Value::as_str) == Some("Provisioned")
        && n(kcp, "/status/readyReplicas") >= u64::from(c.spec.control_plane)
        && n(md, "/status/readyReplicas") >= u64::from(c.spec.workers);
    let version = kcp.pointer("/status/version").and_then(Value::as_str).map(str::to_string);
    let endpoint = capi
        .pointer("/spec/controlPlaneEndpoint/host")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(|h| format!("{h}:{}", n(capi, "/spec/controlPlaneEndpoint/port")));
    let ready = capi
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|x| x["type"] == "Ready"))
        .map(|x| {
            let s = |k: &str| x.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("status") == "True", s("reason"), s("message"))
        });
    (provisioned, version, endpoint, ready)
}

/// Reads each desired object, applies the missing and drifted ones; the
/// objects as they are after, and the kinds that were re-applied.
async fn converge(
    ctx: &Context,
    ns: &str,
    desired: Vec<Desired>,
    force_all: bool,
) -> Result<(Vec<(Desired, Option<DynamicObject>)>, Vec<String>), Error> {
    let pp = PatchParams::apply(crate::labels::FIELD_MANAGER).force();
    let mut out = Vec::with_capacity(desired.len());
    let mut applied = Vec::new();
    for d in desired {
        let api = dynamic(&ctx.client, ns, &d.api_version, &d.kind);
        let now = api.get_opt(&d.name).await?;
        let fine =
            now.as_ref().is_some_and(|o| build::contains(&serde_json::to_value(o).unwrap_or(Value::Null), &d.body));
        if fine && !force_all {
            out.push((d, now));
            continue;
        }
        let after = api.patch(&d.name, &pp, &Patch::Apply(&d.body)).await?;
        if now.is_some() || force_all {
            applied.push(format!("{} {}", d.kind, d.name));
        }
        out.push((d, Some(after)));
    }
    Ok((out, applied))
}

/// The nodes the cluster's machines joined as, how many machines are
/// still being provisioned (not yet Running, not deleting), and how many
/// are not deleting.
async fn machine_nodes(ctx: &Context, ns: &str, cluster: &str) -> Result<(BTreeSet<String>, u32, u32), Error> {
    let machines = dynamic(&ctx.client, ns, build::CAPI, "Machine");
    let lp = ListParams::default().labels(&format!("{}={cluster}", build::CLUSTER_NAME));
    let items = machines.list(&lp).await?.items;
    let phase =
        |m: &DynamicObject| m.data.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").to_string();
    let live: Vec<&DynamicObject> = items.iter().filter(|m| m.metadata.deletion_timestamp.is_none()).collect();
    let provisioning =
        live.iter().filter(|m| matches!(phase(m).as_str(), "Pending" | "Provisioning" | "Provisioned")).count();
    let nodes = items
        .iter()
        .filter_map(|m| m.data.pointer("/status/nodeRef/name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok((nodes, count(provisioning), count(live.len())))
}

/// Audits the cluster through its kubeconfig.
async fn audit(ctx: &Context, ns: &str, c: &Cluster, kubeconfig: Option<&str>) -> Result<ClusterHealth, Error> {
    let desired = c.spec.control_plane.saturating_add(c.spec.workers);
    let now = Some(Timestamp::now().to_string());
    let Some(kc) = kubeconfig else {
        return Ok(ClusterHealth {
            api_server: "Unknown".into(),
            ready_nodes: 0,
            desired_nodes: desired,
            provisioning_nodes: 0,
            provisioning_since: None,
            last_audit: now,
            message: Some("no kubeconfig yet".into()),
        });
    };
    let (result, provisioning) = match super::audit::client(kc).await {
        Ok(client) => {
            // Machines Cluster API has yet to make (a scale just asked for) are being provisioned too.
            let (nodes, provisioning, live) = machine_nodes(ctx, ns, &c.name_any()).await?;
            (super::audit::audit(&client, &nodes).await, provisioning.saturating_add(desired.saturating_sub(live)))
        }
        Err(why) => (super::audit::Audit { api_ok: false, ready_nodes: 0, message: Some(why) }, 0),
    };
    let message = result.message.or_else(|| {
        let ready = result.ready_nodes;
        match (ready < desired, provisioning) {
            (false, _) => None,
            (true, 0) => Some(format!("{ready} of {desired} nodes are Ready")),
            (true, 1) => Some(format!("{ready} of {desired} nodes are Ready; 1 machine is being provisioned")),
            (true, p) => Some(format!("{ready} of {desired} nodes are Ready; {p} machines are being provisioned")),
        }
    });
    Ok(ClusterHealth {
        api_server: if result.api_ok { "Healthy" } else { "Unreachable" }.into(),
        ready_nodes: result.ready_nodes,
        desired_nodes: desired,
        provisioning_nodes: provisioning,
        provisioning_since: None,
        last_audit: now,
        message,
    })
}

/// Whether the last audit is older than the audit period.
fn audit_due(st: &ClusterStatus, period: Duration) -> bool {
    let last = st.health.as_ref().and_then(|h| h.last_audit.as_deref()).and_then(|t| t.parse::<Timestamp>().ok());
    last.is_none_or(|t| {
        Timestamp::now().duration_since(t) >= jiff::SignedDuration::try_from(period).unwrap_or_default()
    })
}

/// Asks the control plane to roll out (a merge patch of its own field
/// manager: the applied configuration does not own `rolloutAfter`).
async fn roll_out(ctx: &Context, ns: &str, cluster: &str) -> Result<(), Error> {
    let api = dynamic(&ctx.client, ns, build::CONTROL_PLANE_API, "KubeadmControlPlane");
    let body = json!({"spec": {"rolloutAfter": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}});
    api.patch(&build::control_plane_name(cluster), &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

async fn refuse(c: &Cluster, ctx: &Context, reason: &str, message: String) -> Result<Action, Error> {
    let mut st = c.status.clone().unwrap_or_default();
    let old = st.clone();
    let changed = old.conditions.iter().all(|x| x.message != message);
    set_condition(&mut st, condition(&old, "Accepted", false, reason, message.clone(), c.metadata.generation));
    // A cluster that was built keeps running as it was; one never built has failed.
    if !old.conditions.iter().any(|x| x.type_ == "Provisioned" && x.status == "True") {
        st.phase = Some("Failed".into());
    }
    st.observed_generation = c.metadata.generation;
    if changed {
        ctx.event(c, true, reason, message);
    }
    write_status(c, ctx, &old, &st).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Says on the cluster that the API server refused one of Paddock's writes
/// for it (an admission webhook, RBAC, a schema): condition `Applied` False,
/// reason `ApiRefused`, and a Warning Event when that is news. The look is
/// tried again with back-off; the phase stays as it is.
async fn api_refused(c: &Cluster, ctx: &Context, why: &str) {
    let old = c.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let message = format!("the Kubernetes API server refused a write: {why}");
    if old.conditions.iter().any(|x| x.type_ == "Applied" && x.message == message) {
        return;
    }
    set_condition(&mut st, condition(&old, "Applied", false, "ApiRefused", message.clone(), c.metadata.generation));
    ctx.event(c, true, "ApiRefused", message);
    if let Err(e) = write_status(c, ctx, &old, &st).await {
        tracing::debug!(cluster = %c.name_any(), error = %e, "cannot say on the cluster why it is stuck");
    }
}

async fn write_status(c: &Cluster, ctx: &Context, old: &ClusterStatus, st: &ClusterStatus) -> Result<(), Error> {
    if old == st {
        return Ok(());
    }
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &c.namespace().unwrap_or_default());
    api.patch_status(&c.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": st}))).await?;
    Ok(())
}

fn owner(c: &Cluster) -> Value {
    json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Cluster", "name": c.name_any(), "uid": c.uid().unwrap_or_default()})
}

/// The CNI manifest's ConfigMap data, when the profile names one.
async fn cni(ctx: &Context, p: &ClusterProfile) -> Result<Option<Value>, Error> {
    let Some(name) = &p.spec.cni_config_map else { return Ok(None) };
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.settings.system_namespace).get_opt(name).await?;
    Ok(cm.map(|cm| json!(cm.data.unwrap_or_default())))
}

async fn reconcile(c: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .reconcile("cluster", async {
            let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &c.namespace().unwrap_or_default());
            if c.metadata.deletion_timestamp.is_some() {
                return delete(&c, &ctx, &api).await;
            }
            if !c.finalizers().iter().any(|f| f == FINALIZER) {
                add_finalizer(&api, c.as_ref(), FINALIZER).await?;
            }
            let profile = match accept(&c, &ctx).await? {
                Ok(p) => p,
                Err((reason, message)) => return refuse(&c, &ctx, reason, message).await,
            };
            let looked = look(&c, &ctx, &profile).await;
            if let Some(why) = looked.as_ref().err().and_then(crate::error::refusal) {
                api_refused(&c, &ctx, &why).await;
            }
            looked
        })
        .await
}

/// Everything after acceptance: apply, kubeconfig, audit, repair, status.
async fn look(c: &Cluster, ctx: &Context, profile: &ClusterProfile) -> Result<Action, Error> {
    let (ns, name) = (c.namespace().unwrap_or_default(), c.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let ring = ctx.ring().await?;
    let mut vault = Vault::read(&secrets, &name).await?;
    let owner = owner(c);
    let public = vault.ssh_public_key(&secrets, &ring, (&ns, &name), &owner).await?;
    let cni = cni(ctx, profile).await?;
    let old = c.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let (world, reapplied) = converge(ctx, &ns, build::build(c, &profile.spec, &public, cni.as_ref()), false).await?;
    let (provisioned, version, endpoint, capi_ready) = observed(c, &world);
    let was_up = old.conditions.iter().any(|x| x.type_ == "Provisioned" && x.status == "True");
    if !reapplied.is_empty() && was_up {
        ctx.metrics.cluster_repaired("Drift");
        ctx.event(
            c,
            true,
            "DriftRepaired",
            format!("re-applied what was changed or deleted: {}", reapplied.join(", ")),
        );
    }
    let capi_kc = if vault.get(super::vault::KUBECONFIG).is_none()
        || st.health.as_ref().is_some_and(|h| h.api_server != "Healthy")
    {
        capi_kubeconfig(&secrets, &name).await?
    } else {
        None
    };
    vault.sync(&secrets, &ring, (&ns, &name), &owner, capi_kc.as_deref()).await?;
    st.kubeconfig_ready = vault.get(super::vault::KUBECONFIG).is_some();
    st.ssh_public_key = Some(public.clone());
    st.ssh_key_retrieved = vault.get(super::vault::SSH_PRIVATE).is_none();
    st.version = version.or(st.version);
    st.endpoint = endpoint.or(st.endpoint);
    let (rules, rendered) = (profile.spec.security_group_rules.clone(), build::infrastructure_spec(&profile.spec).1);
    st.security_groups = Some(SecurityGroupsStatus { rules, rendered });
    st.observed_generation = c.metadata.generation;
    set_condition(
        &mut st,
        condition(&old, "Accepted", true, "Accepted", "the cluster can be built".into(), c.metadata.generation),
    );
    let applied = "the Cluster API objects are as this generation asks".to_string();
    set_condition(&mut st, condition(&old, "Applied", true, "Applied", applied, c.metadata.generation));
    if let Some((ok, reason, message)) = capi_ready {
        let reason = if reason.is_empty() { "Ready".into() } else { reason };
        set_condition(&mut st, condition(&old, "CAPIReady", ok, &reason, message, c.metadata.generation));
    }
    let next = if provisioned || was_up {
        let desired = || build::build(c, &profile.spec, &public, cni.as_ref());
        // A new generation (a scale, an upgrade) is audited at once, so the status says what was asked.
        let edited = old.observed_generation != c.metadata.generation;
        health(c, ctx, &ns, &mut st, (&vault, &ring), (provisioned && !was_up, edited), desired).await?
    } else {
        st.phase = Some("Provisioning".into());
        PROGRESS
    };
    // An upgrade the control plane has not reported yet is looked at again soon.
    let wanted = c.spec.version.as_ref().or(profile.spec.versions.first());
    let next = if st.version.as_ref() != wanted { next.min(PROGRESS.saturating_mul(5)) } else { next };
    write_status(c, ctx, &old, &st).await?;
    Ok(Action::requeue(next))
}

async fn capi_kubeconfig(secrets: &Api<Secret>, cluster: &str) -> Result<Option<String>, Error> {
    let s = secrets.get_opt(&format!("{cluster}-kubeconfig")).await?;
    Ok(s.and_then(|s| s.data).and_then(|d| d.get("value").map(|v| String::from_utf8_lossy(&v.0).into_owned())))
}

/// Audits when due, decides and repairs; the time to the next look.
async fn health(
    c: &Cluster,
    ctx: &Context,
    ns: &str,
    st: &mut ClusterStatus,
    (vault, ring): (&Vault, &KeyRing),
    (first, edited): (bool, bool),
    desired: impl Fn() -> Vec<Desired>,
) -> Result<Duration, Error> {
    let period = ctx.settings.clusters.audit;
    // A scale or an upgrade under way is looked at again soon, not at the audit period.
    let unhealthy =
        st.health.as_ref().is_some_and(|h| !repair::healthy(h, Timestamp::now()) || h.provisioning_nodes > 0);
    if first {
        set_condition(
            st,
            condition(
                st,
                "Provisioned",
                true,
                "Provisioned",
                "Cluster API provisioned the cluster".into(),
                c.metadata.generation,
            ),
        );
        ctx.event(c, false, "Provisioned", "Cluster API provisioned the cluster".into());
    }
    if first || edited || unhealthy || audit_due(st, period) {
        let kc = vault.kubeconfig(ring, ns, &c.name_any())?;
        let mut h = audit(ctx, ns, c, kc.as_deref()).await?;
        let before = st.health.as_ref().and_then(|b| b.provisioning_since.clone());
        h.provisioning_since = (h.provisioning_nodes > 0).then(|| before.or(h.last_audit.clone())).flatten();
        st.health = Some(h);
    }
    let Some(h) = st.health.clone() else { return Ok(PROGRESS) };
    let v = repair::decide(Timestamp::now(), st.phase.as_deref(), st.repairs.as_ref(), &h, &ctx.settings.clusters);
    if let Some(act) = v.act {
        let kind = if act == Act::Rollout {
            "Rollout"
        } else if h.api_server != "Healthy" {
            "ApiServer"
        } else {
            "Nodes"
        };
        ctx.metrics.cluster_repaired(kind);
        converge(ctx, ns, desired(), true).await?;
        if act == Act::Rollout {
            roll_out(ctx, ns, &c.name_any()).await?;
        }
    }
    if let Some((warning, reason, note)) = v.event.clone() {
        ctx.event(c, warning, reason, note);
    }
    let healthy = v.phase == "Running";
    let msg = h.message.clone().unwrap_or_else(|| "the API server is ready and every node is Ready".into());
    let reason = if healthy { "Healthy" } else { v.phase };
    set_condition(st, condition(st, "Healthy", healthy, reason, msg, c.metadata.generation));
    st.phase = Some(v.phase.into());
    st.repairs = v.repairs;
    let converging = h.provisioning_nodes > 0;
    Ok(if healthy && !converging { period } else { period.min(PROGRESS.saturating_mul(if healthy { 5 } else { 2 })) })
}

/// A deleted cluster: the Cluster API objects are deleted, and the
/// finalizer goes once Cluster API has deleted its Cluster.
async fn delete(c: &Cluster, ctx: &Context, api: &Api<Cluster>) -> Result<Action, Error> {
    let (ns, name) = (c.namespace().unwrap_or_default(), c.name_any());
    let served = ctx
        .client
        .list_api_group_resources(build::CAPI)
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == "clusters"));
    if served {
        let capi = dynamic(&ctx.client, &ns, build::CAPI, "Cluster");
        if capi.get_opt(&name).await?.is_some() {
            let _ = capi.delete(&name, &Default::default()).await;
            let mut st = c.status.clone().unwrap_or_default();
            let old = st.clone();
            st.phase = Some("Deleting".into());
            write_status(c, ctx, &old, &st).await?;
            return Ok(Action::requeue(PROGRESS));
        }
        // The rest (templates, health check, CNI) has no machines behind it.
        for (api_version, kind, n) in leftovers(&name) {
            let _ = dynamic(&ctx.client, &ns, api_version, kind).delete(&n, &Default::default()).await;
        }
    }
    let _ = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .delete(&super::vault::secret_name(&name), &Default::default())
        .await;
    remove_finalizer(api, c, FINALIZER).await?;
    Ok(Action::await_change())
}

fn leftovers(name: &str) -> Vec<(&'static str, &'static str, String)> {
    let (cp, md) = (build::control_plane_name(name), build::workers_name(name));
    vec![
        (build::CONTROL_PLANE_API, "KubeadmControlPlane", cp),
        (build::CAPI, "MachineDeployment", md.clone()),
        (build::CAPI, "MachineHealthCheck", md.clone()),
        (build::BOOTSTRAP_API, "KubeadmConfigTemplate", md),
        (build::ADDONS_API, "ClusterResourceSet", format!("{name}-cni")),
        ("v1", "ConfigMap", format!("{name}-cni")),
    ]
}

fn error_policy(c: Arc<Cluster>, e: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(cluster = %c.name_any(), namespace = ?c.namespace(), error = %e, "cluster reconcile failed");
    // A refusal stays until someone edits the cluster or its profile (the
    // edit of the cluster brings it back at once): no sooner than a minute.
    let wait = if crate::error::refusal(e).is_some() { 60 } else { 5 };
    Action::requeue(Duration::from_secs(wait))
}

/// Runs the cluster reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<Cluster> = Api::all(ctx.client.clone());
    let mut wc = kube::runtime::watcher::Config::default();
    if let Some(sel) = ctx.settings.scope_selector() {
        wc = wc.labels(&sel);
    }
    Controller::new(api, wc)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| {
            ctx.metrics.run_result("cluster", &r);
            futures::future::ready(())
        })
        .await;
}
