//! The pool reconciler: for each Template, keeps `spec.warmPool.size` Ready
//! pod sets in the pool namespace.
//!
//! Unclaimed sets never exceed `size`, sets starting never exceed
//! `maxUnready`, and sets in existence (terminating included) never exceed
//! `size + maxUnready`, whatever happens to readiness: a set that fails
//! (pod failed, image pull failed, crash loop, or not Ready within
//! [`READY_TIMEOUT`]) is deleted and replaced after an exponential back-off,
//! and reported in `status.pool` — never multiplied. Sets of an older
//! template generation are replaced; claimed sets are left alone.

use super::Pools;
use super::build::{PodSet, generation, pod_set, prepull, prepull_name};
use super::claim::{claimable, delete_claimed, is_ready, sets};
use crate::config::Settings;
use crate::error::Error;
use crate::instance::phase::aggregate;
use crate::labels::{FIELD_MANAGER, INSTANCE};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use rand::Rng;
use resources::admission::template_problems;
use resources::template::PoolStatus;
use resources::vocabulary::{CLAIM, INSTANCE_NAMESPACE, POOL, POOL_SET, TEMPLATE_GENERATION};
use resources::{Instance, InstancePhase, Template};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A set not Ready this long after its creation counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait between replacements of failing sets.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often claimed sets are checked for an instance that is gone, and
/// how often an unchanged prepull DaemonSet (or its absence) is enforced again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Least time between two status writes of a pool that only changed its
/// counts or went between Ready and Filling (another change of state is
/// written at once): at 100 claims/s every claim changed `claimed`, and
/// every write came back as a Template event.
const STATUS_EVERY: Duration = Duration::from_millis(250);

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub pools: Arc<Pools>,
    pub metrics: Arc<crate::metrics::Metrics>,
    namespace_ready: AtomicBool,
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
    swept: Mutex<HashMap<String, Instant>>,
    /// Per template: the prepull DaemonSet last applied (None: made absent).
    prepulled: crate::sent::Sent,
    /// Per template: when its pool status was last written.
    status_written: Mutex<HashMap<String, Instant>>,
    /// The pool pods' watch cache (set when the controller runs, before any reconcile).
    pods: std::sync::OnceLock<Store<Pod>>,
    /// This reconciler's own writes: the creates and deletes its cache has
    /// not shown yet (`crate::ledger`'s expectations).
    ledger: crate::ledger::Ledger,
    /// Whether any node carries a role, from a watch another reconciler
    /// keeps (None while it has not listed the nodes).
    node_roles: std::sync::OnceLock<NodeRoles>,
    /// An instance's uid by namespace and name, from the instance
    /// reconciler's watch (None: not shown, or no watch).
    instances: std::sync::OnceLock<InstanceUids>,
    /// The process's shared watches (its own, on first use, unless given).
    index: std::sync::OnceLock<crate::index::Index>,
}

/// Reads an instance's uid (namespace, name) from a watch cache.
pub type InstanceUids = Box<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Reads whether any node carries a role from a watch cache.
pub type NodeRoles = Box<dyn Fn() -> Option<bool> + Send + Sync>;

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        pools: Arc<Pools>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        metrics.watch_pools(pools.clone());
        Arc::new(Self {
            client,
            settings,
            pools,
            metrics,
            namespace_ready: AtomicBool::new(false),
            backoff: Mutex::new(HashMap::new()),
            swept: Mutex::new(HashMap::new()),
            prepulled: crate::sent::Sent::default(),
            status_written: Mutex::new(HashMap::new()),
            pods: std::sync::OnceLock::new(),
            ledger: crate::ledger::Ledger::default(),
            node_roles: std::sync::OnceLock::new(),
            instances: std::sync::OnceLock::new(),
            index: std::sync::OnceLock::new(),
        })
    }

    /// Reads instances through `uids` (a watch cache) in the sweep.
    pub fn read_instances_from(&self, uids: InstanceUids) {
        let _ = self.instances.set(uids);
    }

    /// Reads Templates and pool pods from the process's shared watches.
    /// Takes effect when called before [`run`].
    pub fn read_from(&self, index: crate::index::Index) {
        let _ = self.index.set(index);
    }

    fn instance_uid(&self, ns: &str, name: &str) -> Option<String> {
        self.instances.get().and_then(|f| f(ns, name))
    }

    /// Reads whether nodes carry roles through `roles` (a watch cache)
    /// instead of listing nodes for each refill.
    pub fn read_node_roles_from(&self, roles: NodeRoles) {
        let _ = self.node_roles.set(roles);
    }

    /// Whether any node carries a role: from the cache, else the API server.
    async fn any_node_has_role(&self) -> Result<bool, kube::Error> {
        match self.node_roles.get().and_then(|f| f()) {
            Some(any) => Ok(any),
            None => crate::noderoles::any_node_has_role(&self.client).await,
        }
    }

    /// Drops what was remembered of a template's pool.
    fn forget(&self, template: &str) {
        self.prepulled.forget(template);
        self.status_written.lock().unwrap_or_else(|e| e.into_inner()).remove(template);
    }
}

/// Creates the pool namespace and its objects (once per process).
async fn ensure_namespace(ctx: &Context) -> Result<(), Error> {
    if ctx.namespace_ready.load(Ordering::Relaxed) {
        return Ok(());
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for obj in super::build::namespace_objects(&ctx.settings) {
        let (kind, name) = (obj["kind"].as_str().unwrap_or(""), obj["metadata"]["name"].as_str().unwrap_or(""));
        let ns = &ctx.settings.pool_namespace;
        let c = ctx.client.clone();
        match kind {
            "Namespace" => {
                Api::<k8s_openapi::api::core::v1::Namespace>::all(c).patch(name, &pp, &Patch::Apply(&obj)).await?;
            }
            "ServiceAccount" => {
                Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(c, ns)
                    .patch(name, &pp, &Patch::Apply(&obj))
                    .await?;
            }
            "LimitRange" => {
                Api::<k8s_openapi::api::core::v1::LimitRange>::namespaced(c, ns)
                    .patch(name, &pp, &Patch::Apply(&obj))
                    .await?;
            }
            _ => {
                Api::<NetworkPolicy>::namespaced(c, ns).patch(name, &pp, &Patch::Apply(&obj)).await?;
            }
        }
    }
    ctx.namespace_ready.store(true, Ordering::Relaxed);
    Ok(())
}

/// How the unclaimed sets of a pool stand (pods shared with the watch
/// cache, not copies).
#[derive(Debug, Default)]
struct Census {
    ready: Vec<(String, Vec<Arc<Pod>>)>,
    starting: Vec<(String, Vec<Arc<Pod>>)>,
    /// Sets to delete: an older generation, incomplete, or failed (with why).
    stale: Vec<(String, Vec<Arc<Pod>>)>,
    failed: Vec<(String, Vec<Arc<Pod>>, String)>,
    terminating: usize,
    claimed: usize,
}

fn age(pods: &[Arc<Pod>]) -> Duration {
    pods.iter()
        .filter_map(|p| p.metadata.creation_timestamp.as_ref())
        .map(|t| t.0.duration_until(jiff::Timestamp::now()).unsigned_abs())
        .min()
        .unwrap_or_default()
}

fn census(tpl: &Template, pods: Vec<Arc<Pod>>) -> Census {
    let claimed = pods
        .iter()
        .filter(|p| p.labels().contains_key(CLAIM))
        .filter_map(|p| p.labels().get(POOL_SET).cloned())
        .collect::<BTreeSet<_>>()
        .len();
    let mut c = Census { claimed, ..Default::default() };
    let generation = generation(tpl);
    for (set, pods) in sets(tpl, pods) {
        if pods.iter().any(|p| p.metadata.deletion_timestamp.is_some()) {
            c.terminating += 1;
        } else if claimable(tpl, &pods) {
            c.ready.push((set, pods));
        } else if pods.iter().any(|p| p.labels().get(TEMPLATE_GENERATION) != Some(&generation))
            || (pods.len() != tpl.spec.pods.len() && age(&pods) > Duration::from_secs(10))
        {
            c.stale.push((set, pods));
        } else {
            let named: Vec<(String, Pod)> = pods
                .iter()
                .map(|p| (p.labels().get(resources::vocabulary::POD).cloned().unwrap_or_default(), (**p).clone()))
                .collect();
            let o = aggregate(tpl.spec.pods.len(), &named, false, false, false);
            if matches!(o.phase, InstancePhase::Failed | InstancePhase::Degraded) {
                c.failed.push((set, pods, o.message));
            } else if age(&pods) > READY_TIMEOUT && !pods.iter().all(|p| is_ready(p)) {
                c.failed.push((set, pods, format!("not Ready within {}s", READY_TIMEOUT.as_secs())));
            } else {
                c.starting.push((set, pods));
            }
        }
    }
    // Oldest first: claims take the oldest, excess goes from the newest.
    let key = |(n, p): &(String, Vec<Arc<Pod>>)| (std::cmp::Reverse(age(p)), n.clone());
    c.ready.sort_by_key(key);
    c.starting.sort_by_key(key);
    c
}

/// Deletes a set's pods, only as they were seen (a pod claimed meanwhile has
/// another resourceVersion and stays).
async fn delete_set(ctx: &Context, pool: &str, api: &Api<Pod>, pods: &[Arc<Pod>]) -> Result<(), Error> {
    for p in pods {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { resource_version: p.metadata.resource_version.clone(), uid: None }),
            ..DeleteParams::background()
        };
        match api.delete(&p.name_any(), &dp).await {
            Ok(_) => ctx.ledger.expect_deleted(pool, p.name_any()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates a set's objects; `created` hears of each pod made.
async fn create_set(c: &Client, ns: &str, set: &PodSet, created: impl Fn(String)) -> Result<(), kube::Error> {
    let pp = PostParams::default();
    if let Some(s) = &set.tokens {
        Api::<Secret>::namespaced(c.clone(), ns).create(&pp, s).await?;
    }
    for cm in &set.config_maps {
        Api::<ConfigMap>::namespaced(c.clone(), ns).create(&pp, cm).await?;
    }
    // The set's Service and policies before its pods: a set that has pods
    // has them (what a failure leaves without pods, the sweep removes).
    for svc in &set.services {
        Api::<Service>::namespaced(c.clone(), ns).create(&pp, svc).await?;
    }
    for pol in &set.policies {
        Api::<NetworkPolicy>::namespaced(c.clone(), ns).create(&pp, pol).await?;
    }
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    for p in &set.pods {
        pods.create(&pp, p).await?;
        created(p.name_any());
    }
    Ok(())
}

fn suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..6).map(|_| CHARS[r.random_range(0..CHARS.len())] as char).collect()
}

fn secret() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::rng();
    (0..32).map(|_| CHARS[r.random_range(0..CHARS.len())] as char).collect()
}

async fn reconcile(tpl: Arc<Template>, ctx: Arc<Context>) -> Result<Action, Error> {
    let metrics = ctx.metrics.clone();
    metrics.reconcile("pool", fill(tpl, ctx)).await
}

async fn fill(tpl: Arc<Template>, ctx: Arc<Context>) -> Result<Action, Error> {
    let tname = tpl.name_any();
    if tpl.spec.warm_pool.is_none() && tpl.status.as_ref().and_then(|s| s.pool.as_ref()).is_none() {
        return Ok(Action::await_change());
    }
    ensure_namespace(&ctx).await?;
    let c = &ctx.client;
    let ns = &ctx.settings.pool_namespace;
    let api: Api<Pod> = Api::namespaced(c.clone(), ns);
    let problems = template_problems(&tpl, &ctx.settings.template_policy());
    let pool = tpl.spec.warm_pool.clone();
    // An invalid template, or one being deleted (kept by its finalizer while
    // instances use it), has no pool: its warm pods drain.
    let (size, max_unready, rate) = pool
        .as_ref()
        .filter(|_| problems.is_empty() && tpl.metadata.deletion_timestamp.is_none())
        .map_or((0, 1, 1), |p| (p.size, p.max_unready, p.refill_per_second));
    let store = ctx.pods.get().ok_or_else(|| Error::Waiting("the pool pod watch is not running yet".into()))?;
    // A watch that has not listed yet is no count: the API server's list is.
    let cache = crate::cache::ready(store).then_some(store);
    let pods = super::pool_pods(cache, &api, &tname, false).await?;
    // From the cache, change nothing while it has not shown this reconciler's
    // last creates and deletes (see `crate::ledger`'s expectations): it would count wrong.
    let may_change = cache.is_none() || ctx.ledger.expectations_met(&tname, &pods);
    let claimed_pods: Vec<Arc<Pod>> = pods.iter().filter(|p| p.labels().contains_key(CLAIM)).cloned().collect();
    let mut census = census(&tpl, pods);
    if !may_change {
        census.stale.clear();
        census.failed.clear();
    }
    for (_, pods) in &census.stale {
        delete_set(&ctx, &tname, &api, pods).await?;
    }
    let mut message = String::new();
    for (set, pods, why) in &census.failed {
        tracing::warn!(template = %tname, set = %set, reason = %why, "warm pod set failed; replacing it after a back-off");
        delete_set(&ctx, &tname, &api, pods).await?;
        ctx.pools.with_stats(&tname, |s| s.failures.fetch_add(1, Ordering::Relaxed));
        message = format!("set {set} failed: {why}");
    }
    let removed = census.stale.len() + census.failed.len();
    // Back-off: doubles with each failure in a row, reset once a set is Ready.
    let now = Instant::now();
    let not_before = {
        let mut b = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let entry = b.entry(tname.clone()).or_insert((0, now));
        if !census.failed.is_empty() {
            entry.0 += census.failed.len() as u32;
            let wait = Duration::from_secs(1).saturating_mul(1 << entry.0.min(9)).min(MAX_BACKOFF);
            entry.1 = now + wait;
        } else if !census.ready.is_empty() && entry.1 <= now {
            entry.0 = 0;
        }
        entry.1
    };
    // Too many: drop starting sets first, then the newest Ready ones.
    let size = size as usize;
    while may_change && census.ready.len() + census.starting.len() > size {
        let (_, pods) = match census.starting.pop() {
            Some(s) => s,
            None => census.ready.pop().unwrap_or_default(),
        };
        delete_set(&ctx, &tname, &api, &pods).await?;
        census.terminating += 1;
    }
    let (ready, starting) = (census.ready.len(), census.starting.len());
    let existing = ready + starting + census.terminating + removed;
    let want = size
        .saturating_sub(ready + starting)
        .min((max_unready as usize).saturating_sub(starting))
        .min(rate as usize)
        .min((size + max_unready as usize).saturating_sub(existing));
    let mut blocked = None;
    if may_change && want > 0 && not_before <= now {
        let any_role = ctx.any_node_has_role().await?;
        let mut sets = Vec::new();
        for _ in 0..want {
            match pod_set(&tpl, &ctx.settings, any_role, &suffix(), secret) {
                Ok(s) => sets.push(s),
                Err(p) => return Err(Error::Waiting(format!("cannot build a pod set: {p:?}"))),
            }
        }
        let creates = sets.into_iter().map(|s| {
            let (c, ns, ctx, tname) = (c.clone(), ns.clone(), ctx.clone(), tname.clone());
            async move { create_set(&c, &ns, &s, |pod| ctx.ledger.expect_created(&tname, pod)).await }
        });
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(creates).buffer_unordered(16).collect().await;
        let made = results.iter().filter(|r| r.is_ok()).count();
        ctx.pools.with_stats(&tname, |s| s.refills.fetch_add(made as u64, Ordering::Relaxed));
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            tracing::warn!(template = %tname, error = %e, "cannot create warm pods");
            blocked = Some(format!("the pool namespace refused new pods: {e}"));
        }
    }
    apply_prepull(&ctx, &tpl, size > 0 && pool.as_ref().is_some_and(|p| p.prepull)).await?;
    sweep(&ctx, &tname, &claimed_pods).await?;
    let failures = ctx.pools.with_stats(&tname, |s| s.failures.load(Ordering::Relaxed));
    let (state, message) = if !problems.is_empty() && pool.is_some() {
        ("Refused", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
    } else if let Some(b) = blocked {
        ("Blocked", b)
    } else if not_before > now {
        ("Failing", message)
    } else if ready >= size {
        ("Ready", String::new())
    } else {
        ("Filling", String::new())
    };
    let status = PoolStatus {
        ready: ready as u32,
        starting: starting as u32,
        claimed: census.claimed as u32,
        failures,
        state: state.into(),
        message,
    };
    ctx.pools.with_stats(&tname, |s| {
        s.size.store(size as u64, Ordering::Relaxed);
        s.ready.store(ready as u64, Ordering::Relaxed);
        s.starting.store(starting as u64, Ordering::Relaxed);
        s.claimed.store(census.claimed as u64, Ordering::Relaxed);
    });
    if may_change && pool.is_none() && ready + starting + census.terminating == 0 {
        ctx.pools.forget(&tname);
        ctx.forget(&tname);
        let patch = json!({"status": {"pool": null}});
        Api::<Template>::all(c.clone()).patch_status(&tname, &PatchParams::default(), &Patch::Merge(patch)).await?;
        return Ok(Action::await_change());
    }
    let current = tpl.status.as_ref().and_then(|s| s.pool.as_ref());
    if current != Some(&status) {
        // Counts alone, and the pool going between Ready and Filling as
        // claims take sets and refills replace them, are written at most
        // every STATUS_EVERY (the requeue writes the last of them): at 45
        // claims a second, writing each flip cost two writes per refilled
        // pod. Any other change of state or message is written at once.
        let routine = |s: &str| matches!(s, "Ready" | "Filling");
        let same_state = current.is_some_and(|c| {
            c.message == status.message && (c.state == status.state || (routine(&c.state) && routine(&status.state)))
        });
        let wait = {
            let w = ctx.status_written.lock().unwrap_or_else(|e| e.into_inner());
            w.get(&tname).map(|at| STATUS_EVERY.saturating_sub(at.elapsed())).filter(|d| same_state && !d.is_zero())
        };
        if let Some(wait) = wait {
            return Ok(Action::requeue(wait));
        }
        // Every field that went empty named with null (the message of a cause that is gone).
        let patch = json!({"status": {"pool": crate::merge::of(current, &status)}});
        Api::<Template>::all(c.clone()).patch_status(&tname, &PatchParams::default(), &Patch::Merge(patch)).await?;
        ctx.status_written.lock().unwrap_or_else(|e| e.into_inner()).insert(tname.clone(), Instant::now());
    }
    Ok(if not_before > now {
        Action::requeue(not_before - now)
    } else if ready + starting < size {
        Action::requeue(Duration::from_secs(1))
    } else if starting > 0 {
        Action::requeue(READY_TIMEOUT)
    } else {
        Action::requeue(SWEEP_EVERY)
    })
}

/// Applies the template's prepull DaemonSet, or deletes it when not wanted.
/// What was last sent is not sent again for [`SWEEP_EVERY`]: a pool
/// reconciles on every claim, and each one deleted an absent DaemonSet.
async fn apply_prepull(ctx: &Context, tpl: &Template, wanted: bool) -> Result<(), Error> {
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.settings.pool_namespace);
    let tname = tpl.name_any();
    let name = prepull_name(&tname);
    let desired = if wanted {
        let any_role = ctx.any_node_has_role().await?;
        let ds = prepull(tpl, &ctx.settings, any_role).map_err(|p| Error::Waiting(format!("prepull: {p:?}")))?;
        Some(serde_json::to_value(&ds).map_err(|e| Error::Waiting(format!("prepull: {e}")))?)
    } else {
        None
    };
    if ctx.prepulled.fresh(&tname, &desired) {
        return Ok(());
    }
    match &desired {
        Some(ds) => {
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(ds)).await?;
        }
        None => match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(a)) if a.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    ctx.prepulled.sent(&tname, desired);
    Ok(())
}

/// Removes what claimed sets left behind when their instance is gone (force-
/// removed while the controller was down), and token Secrets and ConfigMaps
/// and the Services and policies of sets that have no pods any more. At
/// most once a minute per template.
async fn sweep(ctx: &Context, tname: &str, claimed: &[Arc<Pod>]) -> Result<(), Error> {
    {
        let mut s = ctx.swept.lock().unwrap_or_else(|e| e.into_inner());
        if s.get(tname).is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return Ok(());
        }
        s.insert(tname.to_string(), Instant::now());
    }
    let c = &ctx.client;
    let ns = &ctx.settings.pool_namespace;
    let mut seen = BTreeSet::new();
    for p in claimed {
        let l = p.labels();
        let (Some(uid), Some(name), Some(ins)) = (l.get(CLAIM), l.get(INSTANCE), l.get(INSTANCE_NAMESPACE)) else {
            continue;
        };
        if !seen.insert(uid.clone()) {
            continue;
        }
        // An instance the watch shows is alive (no read for each claimed set
        // every minute); one it does not show is confirmed with the API server.
        if ctx.instance_uid(ins, name).as_deref() == Some(uid.as_str()) {
            continue;
        }
        let live = Api::<Instance>::namespaced(c.clone(), ins).get_opt(name).await?;
        if live.as_ref().and_then(|i| i.metadata.uid.as_ref()) != Some(uid) {
            tracing::info!(template = %tname, instance = %name, namespace = %ins, "removing warm pods of an instance that no longer exists");
            delete_claimed(c, ns, uid, l.get(POOL_SET).map(String::as_str)).await?;
        }
    }
    let lp = ListParams::default().labels(&format!("{POOL}={tname}"));
    let live_sets: BTreeSet<String> = Api::<Pod>::namespaced(c.clone(), ns)
        .list_metadata(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.labels.and_then(|l| l.get(POOL_SET).cloned()))
        .collect();
    sweep_sets(&Api::<Secret>::namespaced(c.clone(), ns), &lp, &live_sets).await?;
    sweep_sets(&Api::<ConfigMap>::namespaced(c.clone(), ns), &lp, &live_sets).await?;
    sweep_sets(&Api::<Service>::namespaced(c.clone(), ns), &lp, &live_sets).await?;
    sweep_sets(&Api::<NetworkPolicy>::namespaced(c.clone(), ns), &lp, &live_sets).await?;
    Ok(())
}

/// Deletes what `lp` selects of sets that have no pods (made more than 30 s
/// ago, so that a set whose pods are being created is left alone).
async fn sweep_sets<K>(api: &Api<K>, lp: &ListParams, live_sets: &BTreeSet<String>) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for m in api.list_metadata(lp).await?.items {
        let old = m
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| t.0.duration_until(jiff::Timestamp::now()).as_secs() > 30);
        if old && m.metadata.labels.as_ref().and_then(|l| l.get(POOL_SET)).is_some_and(|set| !live_sets.contains(set)) {
            let _ = api.delete(&m.name_any(), &DeleteParams::background()).await;
        }
    }
    Ok(())
}

fn error_policy(t: Arc<Template>, e: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(template = %t.name_any(), error = %e, "pool reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the pool reconciler until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let c = ctx.client.clone();
    let index =
        ctx.index.get_or_init(|| crate::index::Index::logging(c.clone(), ctx.settings.scope_selector())).clone();
    let feed = index.pool_pods(&ctx.settings.pool_namespace);
    let (store, pods) = (feed.store(), feed.subscribe().touched_objects());
    let _ = ctx.pods.set(store);
    // A relist's templates trigger only once the whole list is in the store
    // (`cache::reflect`): otherwise a template created while the watch was down
    // is reconciled against the old store, found missing, and its pool forgotten.
    let (templates, triggers) = (index.templates().store(), index.templates().subscribe());
    Controller::for_stream(triggers.applied_objects(), templates)
        .with_config(ctx.settings.controller_config())
        .watches_stream(pods, |p: Pod| p.labels().get(POOL).map(|t| ObjectRef::<Template>::new(t)))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| {
            ctx.metrics.run_result("pool", &r);
            match r {
                // Its template is gone: so is the pool (its pods go with their owner).
                Err(kube::runtime::controller::Error::ObjectNotFound(o)) => {
                    ctx.pools.forget(&o.name);
                    ctx.ledger.forget_pool(&o.name);
                    ctx.forget(&o.name);
                }
                Err(e) => tracing::debug!(error = %e, "pool reconcile error"),
                Ok(_) => {}
            }
            futures::future::ready(())
        })
        .await;
}
