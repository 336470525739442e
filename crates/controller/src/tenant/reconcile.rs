//! The tenant reconciler's apply and cleanup steps, and the Controller that
//! drives them from watches (tenants and everything labelled as theirs).

use super::build::{Desired, POLICIES, build, namespace_name};
use super::cache::{Cached, Caches};
use super::groups::GROUP_LABEL;
use super::status::{Conditions, status_patch};
use crate::config::Settings;
use crate::events::Events;
use crate::finalizers::add_finalizer;
use crate::labels::{MANAGED_BY, MANAGER, TENANT};
use crate::ledger::{Ledger, Repair};
use crate::metrics::Metrics;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use resources::Tenant;
use resources::vocabulary::{TENANT_QUOTA, storage_claim};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const FINALIZER: &str = resources::vocabulary::TENANT_FINALIZER;

pub use crate::error::Error;

/// Shared state of the tenant reconciler.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    events: Events,
    /// Watch caches of the tenants' objects (set when the controller runs, before any reconcile).
    caches: std::sync::OnceLock<Caches>,
    failures: crate::backoff::Failures,
    /// Held while a VPN address pool is chosen and recorded, so two tenants never get the same one.
    vpn_lock: tokio::sync::Mutex<()>,
    /// This controller's own writes: their watch events trigger nothing,
    /// tenants are taken as its last write left them, applies are skipped
    /// and drift is told from them (see `crate::ledger`).
    ledger: Arc<Ledger>,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            events: Events::new(client.clone(), metrics.clone()),
            client,
            settings,
            metrics,
            caches: std::sync::OnceLock::new(),
            failures: crate::backoff::Failures::default(),
            vpn_lock: tokio::sync::Mutex::new(()),
            ledger: Arc::default(),
        })
    }

    /// The watch caches a reconcile reads (set by the controller before it
    /// starts: no reconcile runs without them).
    fn caches(&self) -> Result<&Caches, Error> {
        self.caches.get().ok_or_else(|| Error::Waiting("the tenant watch caches are not running yet".into()))
    }

    fn event(&self, t: &Tenant, type_: EventType, reason: &str, note: String) {
        self.events.record("Tenant", t.object_ref(&()), type_ == EventType::Warning, reason, note);
    }
}

/// Applies a tenant's objects, noting drift the applies repaired.
struct Applier<'a> {
    ctx: &'a Context,
    caches: &'a Caches,
    tenant: &'a str,
    repairs: Mutex<Vec<Repair>>,
}

impl Applier<'_> {
    /// Server-side applies `obj`, unless the watch cache shows it is already so.
    async fn apply<K>(&self, api: &Api<K>, obj: &K) -> Result<K, kube::Error>
    where
        K: Cached + Serialize + DeserializeOwned + Debug,
    {
        let store = K::store(self.caches);
        let (applied, repair) = crate::cache::apply(&self.ctx.ledger, self.tenant, store, api, obj).await?;
        self.note(repair);
        Ok(applied)
    }

    /// [`Applier::apply`] for an object whose answer is read no further than
    /// its metadata (see [`crate::cache::apply_meta`]).
    async fn apply_meta<K>(&self, api: &Api<K>, obj: &K) -> Result<(), kube::Error>
    where
        K: Cached + Serialize + DeserializeOwned + Debug,
    {
        let store = K::store(self.caches);
        let repair = crate::cache::apply_meta(&self.ctx.ledger, self.tenant, store, api, obj).await?;
        self.note(repair);
        Ok(())
    }

    /// Drift an apply repaired is kept.
    fn note(&self, repair: Option<Repair>) {
        if let Some(r) = repair {
            self.repairs.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Applies everything but storage; storage problems become conditions.
/// `made`: the namespace, when this reconcile just created it.
async fn apply_desired(
    ctx: &Context,
    tenant: &str,
    d: &Desired,
    made: Option<Namespace>,
    conds: &mut Conditions,
) -> Result<Vec<Repair>, Error> {
    let (c, caches) = (&ctx.client, ctx.caches()?);
    let a = Applier { ctx, caches, tenant, repairs: Mutex::new(Vec::new()) };
    let ns = d.namespace.metadata.name.clone().unwrap_or_default();
    let ns_obj = match made {
        Some(made) => made,
        None => a.apply(&Api::<Namespace>::all(c.clone()), &d.namespace).await?,
    };
    if ns_obj.metadata.deletion_timestamp.is_some() {
        return Err(Error::Waiting(format!("namespace {ns} is still terminating from an earlier deletion")));
    }
    // One at a time: applied all at once they finish together, and their watch
    // events re-run the reconcile before the caches hold all of them (measured:
    // more writes and fewer tenants per second, `paddock bench tenants`).
    let pols: Api<NetworkPolicy> = Api::namespaced(c.clone(), &ns);
    for p in &d.policies {
        a.apply_meta(&pols, p).await?;
    }
    a.apply_meta(&Api::<LimitRange>::namespaced(c.clone(), &ns), &d.limits).await?;
    a.apply_meta(&Api::<ServiceAccount>::namespaced(c.clone(), &ns), &d.service_account).await?;
    a.apply_meta(&Api::<Role>::namespaced(c.clone(), &ns), &d.role).await?;
    a.apply_meta(&Api::<RoleBinding>::namespaced(c.clone(), &ns), &d.role_binding).await?;
    // Tenant-level policies no longer wanted (e.g. internet egress switched off),
    // looked up by name in the cache: a scan of every tenant's policies on every
    // reconcile was most of the controller's CPU at 2,000 tenants.
    let wanted: Vec<&str> = d.policies.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
    let have: Vec<&str> = POLICIES
        .iter()
        .copied()
        .filter(|n| !wanted.contains(n))
        .filter(|n| {
            caches.get::<NetworkPolicy>(Some(&ns), n).is_some_and(|p| {
                let l = p.labels();
                l.get(TENANT).map(String::as_str) == Some(tenant)
                    && l.get(resources::vocabulary::COMPONENT).map(String::as_str) == Some("tenant")
            })
        })
        .collect();
    for name in have {
        pols.delete(name, &DeleteParams::default()).await?;
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), &ns);
    match &d.quota {
        Some(q) => {
            let applied = a.apply(&quotas, q).await?;
            conds.quota_usage(&applied);
        }
        None => {
            if caches.get::<ResourceQuota>(Some(&ns), TENANT_QUOTA).is_some() {
                quotas.delete(TENANT_QUOTA, &DeleteParams::default()).await?;
            }
        }
    }
    conds.namespace(&ns_obj);
    if let Some(pvc) = &d.storage {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), &ns);
        match a.apply(&pvcs, pvc).await {
            Ok(p) => conds.storage(Some(&p), None),
            Err(e @ kube::Error::Api(_)) => {
                let current = pvcs.get_opt(&pvc.metadata.name.clone().unwrap_or_default()).await?;
                conds.storage(current.as_ref(), Some(api_message(&e)));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        conds.storage_disabled();
    }
    Ok(a.repairs.into_inner().unwrap_or_else(|e| e.into_inner()))
}

async fn apply_groups(ctx: &Context, t: &Tenant) -> Result<(), Error> {
    super::groups::reconcile(&ctx.client, &ctx.settings, t, ctx.caches()?).await
}

async fn check_groups(ctx: &Context, t: &Tenant) -> Result<Vec<String>, Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let mut problems = Vec::new();
    for (i, g) in t.spec.groups.iter().enumerate() {
        match api.get_opt(g).await? {
            None => problems.push(format!("spec.groups[{i}]: tenant {g:?} does not exist")),
            Some(other) if other.spec.kind != resources::tenant::TenantKind::Group => {
                problems.push(format!("spec.groups[{i}]: tenant {g:?} is a {:?}, not a Group", other.spec.kind))
            }
            Some(_) => {}
        }
    }
    Ok(problems)
}

async fn write_status(ctx: &Context, t: &Tenant, conds: Conditions) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = status_patch(t, conds);
    if Some(&patch.0) != t.status.as_ref() {
        // Every field that went empty named with null (a VPN turned off, its failure gone).
        let merge = Patch::Merge(serde_json::json!({"status": crate::merge::of(t.status.as_ref(), &patch.0)}));
        ctx.ledger.write(t, api.patch_status(&t.name_any(), &PatchParams::default(), &merge)).await?;
        if let Some((type_, reason, note)) = patch.1 {
            ctx.event(t, type_, &reason, note);
        }
    }
    Ok(())
}

/// The tenant's namespace when it does not exist yet, made now (`Ok(Some)`);
/// `Ok(None)` when it exists and is the tenant's; `Err` why the tenant may
/// not have it when it exists and is not its own (see
/// [`super::build::namespace_refused`]). A create, not an apply, so that a
/// namespace that is not the tenant's is never taken over; and no read
/// first: the namespace watch holds the tenants' namespaces, and a new
/// tenant's create is the one request it costs either way.
async fn claim_namespace(
    ctx: &Context,
    tenant: &str,
    desired: &Namespace,
) -> Result<Result<Option<Namespace>, resources::FieldProblem>, Error> {
    let ns = namespace_name(tenant, &ctx.settings);
    let refused = |existing: &Namespace| super::build::namespace_refused(tenant, &ctx.settings, Some(existing));
    if let Some(cached) = ctx.caches()?.get::<Namespace>(None, &ns) {
        return Ok(refused(&cached).map_or(Ok(None), Err));
    }
    let api = Api::<Namespace>::all(ctx.client.clone());
    let w = ctx.ledger.writing(desired);
    match api
        .create(&PostParams { field_manager: Some(crate::labels::FIELD_MANAGER.into()), ..Default::default() }, desired)
        .await
    {
        Ok(made) => {
            w.wrote(&made);
            Ok(Ok(Some(made)))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            drop(w);
            let existing = api.get(&ns).await?;
            Ok(refused(&existing).map_or(Ok(None), Err))
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies the tenant's objects, its group volumes and its VPN; the
/// problems with its groups instead, if it has any.
async fn children(
    ctx: &Context,
    t: &Tenant,
    desired: &Desired,
    made: Option<Namespace>,
    conds: &mut Conditions,
) -> Result<(Vec<String>, Option<Duration>), Error> {
    let name = t.name_any();
    let groups = check_groups(ctx, t).await?;
    let mut requeue = None;
    if groups.is_empty() {
        for r in apply_desired(ctx, &name, desired, made, conds).await? {
            tracing::info!(tenant = %name, repair = %r, "repaired drift");
            ctx.event(t, EventType::Normal, "DriftRepaired", r.to_string());
        }
        apply_groups(ctx, t).await?;
        let ns = namespace_name(&name, &ctx.settings);
        conds.vpn = super::vpn::reconcile(&ctx.client, t, &ns, &ctx.settings, &ctx.vpn_lock, ctx.caches()?).await?;
        let files = super::files::reconcile(&ctx.client, &ctx.settings, ctx.caches()?, t, &ns).await?;
        if let Some(why) = files.refused {
            ctx.event(t, EventType::Warning, "FileServerRefused", why);
        }
        conds.files = files.status;
        requeue = files.requeue;
    }
    Ok((groups, requeue))
}

async fn apply(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = t.name_any();
    let mut conds = Conditions::new(t.as_ref(), &namespace_name(&name, &ctx.settings));
    let built = build(&t, &ctx.settings);
    let claimed = match &built {
        Ok(desired) => Some(claim_namespace(&ctx, &name, &desired.namespace).await?),
        Err(_) => None,
    };
    // Problems with the tenant's groups may go away without an edit of it
    // (a group created later): looked at again then.
    let mut of_groups = false;
    let mut files_due = None;
    let mut problems: Vec<String> = match (built, claimed) {
        (Ok(_), Some(Err(p))) => vec![p.to_string()],
        (Ok(desired), made) => {
            of_groups = true;
            match children(&ctx, &t, &desired, made.and_then(Result::ok).flatten(), &mut conds).await {
                // The API server refused one of the tenant's objects (RBAC, quota,
                // admission): said on the tenant, not only in the log; retried.
                Err(Error::Kube(kube::Error::Api(s))) if matches!(s.code, 403 | 422) => {
                    conds.refused(&s.reason, &s.message);
                    write_status(&ctx, &t, conds).await?;
                    return Err(Error::Kube(kube::Error::Api(s)));
                }
                other => {
                    let (groups, due) = other?;
                    files_due = due;
                    groups
                }
            }
        }
        (Err(problems), _) => problems.iter().map(|p| p.to_string()).collect(),
    };
    if !problems.is_empty() {
        problems.sort();
        conds.invalid(&problems.join("; "));
        write_status(&ctx, &t, conds).await?;
        // A group may appear (or become one) later; a bad spec waits for an edit.
        return Ok(if of_groups { Action::requeue(Duration::from_secs(30)) } else { Action::await_change() });
    }
    // A failed VPN pod is made anew after a while: look again then.
    let vpn_failed = conds.vpn.as_ref().is_some_and(|v| v.failure.is_some());
    write_status(&ctx, &t, conds).await?;
    Ok(match (vpn_failed, files_due) {
        (true, due) => Action::requeue(due.map_or(super::vpn::RETRY_FAILED, |d| d.min(super::vpn::RETRY_FAILED))),
        // The file server stops when its idle period ends.
        (false, Some(due)) => Action::requeue(due),
        (false, None) => Action::await_change(),
    })
}

async fn cleanup(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = t.name_any();
    let ns = namespace_name(&name, &ctx.settings);
    let c = &ctx.client;
    ctx.ledger.forget_owner(&name);
    let mut conds = Conditions::new(t.as_ref(), &ns);
    conds.terminating();
    write_status(&ctx, &t, conds).await?;
    let nss: Api<Namespace> = Api::all(c.clone());
    let Some(namespace) = nss.get_opt(&ns).await?.filter(|n| super::build::owned_by(n, &name)) else {
        // Gone, or never the tenant's (a refused name): nothing to delete.
        ctx.ledger.forget(t.as_ref());
        return Ok(Action::await_change());
    };
    if t.spec.storage.retain_on_delete {
        // The claim goes with the namespace; its volume stays (reclaim policy Retain),
        // labelled with the tenant so an operator can find and re-use it.
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), &ns);
        if let Some(pvc) = pvcs.get_opt(storage_claim(t.spec.kind)).await?
            && let Some(pv) = pvc.spec.and_then(|s| s.volume_name)
        {
            let pvs: Api<PersistentVolume> = Api::all(c.clone());
            let patch = serde_json::json!({"metadata": {"labels": {TENANT: name, resources::vocabulary::RETAINED: "true"}},
                "spec": {"persistentVolumeReclaimPolicy": "Retain"}});
            pvs.patch(&pv, &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
    }
    if namespace.metadata.deletion_timestamp.is_none() {
        nss.delete(&ns, &DeleteParams::background()).await?;
    }
    ctx.ledger.forget(t.as_ref());
    Err(Error::Waiting(format!("namespace {ns} is being deleted")))
}

async fn reconcile(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let metrics = ctx.metrics.clone();
    metrics.reconcile("tenant", provision(t, ctx)).await
}

async fn provision(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let key = t.name_any();
    let mut t = ctx.ledger.newest(t);
    if t.metadata.deletion_timestamp.is_none() && !t.finalizers().iter().any(|f| f == FINALIZER) {
        // A new tenant: add the finalizer and go on in the same reconcile,
        // instead of waiting for the patch to come back through the watch.
        t = ctx.ledger.write(t.as_ref(), add_finalizer(&api, t.as_ref(), FINALIZER)).await?;
    }
    let res = finalizer(&api, FINALIZER, t, |ev| async {
        match ev {
            Finalizer::Apply(t) => apply(t, ctx.clone()).await,
            Finalizer::Cleanup(t) => cleanup(t, ctx.clone()).await,
        }
    })
    .await;
    let res = crate::error::finished(res);
    if res.is_ok() {
        ctx.failures.succeeded(&key);
    }
    res
}

fn error_policy(t: Arc<Tenant>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = t.name_any();
    let delay = ctx.failures.failed(&key);
    match err {
        Error::Waiting(why) => {
            tracing::debug!(tenant = %key, %why, "waiting");
            Action::requeue(Duration::from_millis(500).max(delay / 4))
        }
        e => {
            tracing::warn!(tenant = %key, error = %e, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

fn by_tenant_label<K: Resource>(o: K) -> Option<ObjectRef<Tenant>> {
    o.meta().labels.as_ref().and_then(|l| l.get(TENANT)).map(|t| ObjectRef::new(t))
}

/// A watch whose objects are cached (without managedFields) and whose events,
/// but for the echoes of this controller's own writes, trigger reconciles.
fn cached<K>(
    ledger: &Arc<Ledger>,
    api: Api<K>,
    wc: watcher::Config,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, events) = crate::cache::reflected(api, wc, crate::cache::whole);
    (store, ledger.unechoed(events))
}

type WatchEvents<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// A watch of the objects this controller made for tenants (by label).
fn ours() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{TENANT}"))
}

/// The watches of Tenants and of their namespaces. The instance controller
/// reads both too: run together (`install::reconcilers`), it reads these
/// stores instead of keeping its own watches of the same objects.
pub struct Watches {
    tenants: (Store<Tenant>, WatchEvents<Tenant>),
    namespaces: (Store<Namespace>, WatchEvents<Namespace>),
    quotas: (Store<ResourceQuota>, WatchEvents<ResourceQuota>),
}

/// The stores of [`Watches`], for readers in other reconcilers.
#[derive(Clone)]
pub struct Stores {
    pub tenants: Store<Tenant>,
    pub namespaces: Store<Namespace>,
    /// The tenants' ResourceQuotas: their `status.used` is what the tenant's
    /// namespace uses (admission adds each create to it).
    pub quotas: Store<ResourceQuota>,
}

impl Watches {
    /// Tenants from `index`; their namespaces and quotas watched here.
    pub fn new(client: &Client, index: &crate::index::Index) -> Self {
        let c = client.clone();
        let feed = index.tenants();
        let (t, ts) = (feed.store(), feed.subscribe().touched_objects());
        let (n, ns) = crate::cache::reflected(Api::<Namespace>::all(c.clone()), ours(), crate::cache::whole);
        // Admission rewrites a quota's usage on every create in its namespace;
        // only a change the tenant's status shows (usage over the quota) matters.
        let quotas = index.tenant_quotas();
        let (q, qs) = (quotas.store(), crate::cache::relevant_by(quotas.subscribe(), super::cache::quota_view));
        Self { tenants: (t, ts.boxed()), namespaces: (n, ns.boxed()), quotas: (q, qs.boxed()) }
    }

    /// The stores, filled while the tenant controller runs.
    pub fn stores(&self) -> Stores {
        Stores { tenants: self.tenants.0.clone(), namespaces: self.namespaces.0.clone(), quotas: self.quotas.0.clone() }
    }

    /// Keeps the stores filled without the tenant controller (for a process
    /// that only reads them), as long as the returned future is polled.
    pub fn fill(self) -> futures::future::BoxFuture<'static, ()> {
        let tenants = crate::cache::drain("tenants", self.tenants.1);
        let namespaces = crate::cache::drain("namespaces", self.namespaces.1);
        let quotas = crate::cache::drain("quotas", self.quotas.1);
        futures::future::join3(tenants, namespaces, quotas).map(|_| ()).boxed()
    }
}

/// Runs the tenant controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let watches =
        Watches::new(&ctx.client, &crate::index::Index::logging(ctx.client.clone(), ctx.settings.scope_selector()));
    run_with(ctx, watches, shutdown).await
}

/// Runs the tenant controller on `watches` until `shutdown` resolves.
pub async fn run_with(
    ctx: Arc<Context>,
    watches: Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (c, e) = (ctx.client.clone(), &ctx.ledger);
    let vpn = || watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},paddock.dev/component=vpn"));
    let Watches { tenants: (tenants, s0), namespaces: (namespaces, s1), quotas: (quotas, s3) } = watches;
    let s1 = e.unechoed(s1);
    let (policies, s2) = cached(e, Api::<NetworkPolicy>::all(c.clone()), ours());
    let s3 = e.unechoed(s3);
    let (limits, s4) = cached(e, Api::<LimitRange>::all(c.clone()), ours());
    let (accounts, s5) = cached(e, Api::<ServiceAccount>::all(c.clone()), ours());
    let (roles, s6) = cached(e, Api::<Role>::all(c.clone()), ours());
    let (bindings, s7) = cached(e, Api::<RoleBinding>::all(c.clone()), ours());
    let (claims, s8) = cached(e, Api::<PersistentVolumeClaim>::all(c.clone()), ours());
    // The VPN's pods and the file servers, in one watch.
    let vpn_or_files =
        || watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},paddock.dev/component in (vpn,files)"));
    let (pods, s9) = cached(e, Api::<Pod>::all(c.clone()), vpn_or_files());
    let (services, s10) = cached(e, Api::<Service>::all(c.clone()), vpn());
    let (secrets, s11) = cached(e, Api::<Secret>::all(c.clone()), vpn());
    let groups = || watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{GROUP_LABEL}"));
    let (group_claims, s12) = cached(e, Api::<PersistentVolumeClaim>::all(c.clone()), groups());
    let (group_volumes, s13) = cached(e, Api::<PersistentVolume>::all(c.clone()), groups());
    let _ = ctx.caches.set(Caches {
        namespaces,
        policies,
        quotas,
        limits,
        accounts,
        roles,
        bindings,
        claims,
        pods,
        services,
        secrets,
        group_claims,
        group_volumes,
    });
    let s0 = ctx.ledger.primary_events(s0);
    Controller::for_stream(s0, tenants)
        .with_config(ctx.settings.controller_config())
        .watches_stream(s1, by_tenant_label)
        .watches_stream(s2, by_tenant_label)
        .watches_stream(s3, by_tenant_label)
        .watches_stream(s4, by_tenant_label)
        .watches_stream(s5, by_tenant_label)
        .watches_stream(s6, by_tenant_label)
        .watches_stream(s7, by_tenant_label)
        .watches_stream(s8, by_tenant_label)
        .watches_stream(s9, by_tenant_label)
        .watches_stream(s10, by_tenant_label)
        .watches_stream(s11, by_tenant_label)
        .watches_stream(s12, by_tenant_label)
        .watches_stream(s13, by_tenant_label)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| {
            ctx.metrics.run_result("tenant", &r);
            match r {
                Ok((obj, _)) => tracing::debug!(tenant = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
            futures::future::ready(())
        })
        .await;
}
