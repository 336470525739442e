//! The instance reconciler: limits, generated secrets, apply (server-side),
//! status from the pods (watched, never polled), TTL expiry on a timer,
//! self-healing through owned-object watches, and Stopping on deletion.

use super::apply::apply_all;
use super::build::{Input, build, generate_value, generated_keys};
use super::cache::{Caches, SecretBrief};
use super::cleanup::{delete_instance_objects, sweep_orphans};
use super::cold;
pub use super::context::{Context, Error, FINALIZER, RETENTION};
use super::status::{base_status, key, over_quota, refused, write_status};
use super::validate::{Decision, Failure, validate};
use super::warm::{self, Start};
use super::world::{Found, World, dereference};
use crate::finalizers::add_finalizer;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use rand::Rng;
use resources::instance::InstancePhase;
use resources::template::Generate;
use resources::vocabulary::{HEARTBEAT_TOKEN_KEY, HEARTBEAT_TOKEN_PREFIX};
use resources::{Instance, Template};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One reconcile of a live instance, as a pipeline: `dereference` (its
/// template and tenant), `validate` (pure: fail, release, expire or run),
/// then for a running instance its warm claim, `build` (pure), apply and
/// status.
async fn apply(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let world = match dereference(&ctx, &inst).await? {
        Found::World(w) => w,
        Found::NamespaceGoing | Found::Foreign => return Ok(Action::await_change()),
        Found::TemplateMissing => {
            // It may yet be created: looked at again now and then.
            fail(&ctx, &inst, &Failure::template_missing(&inst.spec.template)).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        Found::NotATenantNamespace => {
            let ns = inst.namespace().unwrap_or_default();
            fail(&ctx, &inst, &Failure::not_a_tenant_namespace(&ns)).await?;
            return Ok(Action::await_change());
        }
    };
    let ns = inst.namespace().unwrap_or_default();
    super::cleanup::sweep_namespace(&ctx.ledger, ctx.caches()?, &ctx.client, &ns).await;
    match validate(&inst, &world, &ctx.settings, Timestamp::now()) {
        Decision::Fail(f) => {
            fail(&ctx, &inst, &f).await?;
            Ok(Action::await_change())
        }
        Decision::ReleaseFailed(since) => release_failed(&ctx, &inst, since).await,
        Decision::Expire(at) => expire(&ctx, &inst, at).await,
        Decision::Suspend => {
            let expires = super::validate::expiry(&inst, Some(&world.template));
            super::suspend::suspend(&ctx, &inst, &world, expires).await
        }
        Decision::Run { .. } if idle_now(&inst, &world) => super::idle::reap(&ctx, &inst, &world.template).await,
        Decision::Run { expires } => run_instance(&ctx, &inst, &world, expires).await,
    }
}

/// Whether the instance is past its idle deadline now.
fn idle_now(inst: &Instance, world: &World) -> bool {
    let deadline = inst.status.as_ref().and_then(|s| super::idle::deadline(s, &world.template));
    deadline.is_some_and(|at| Timestamp::now() >= at)
}

/// Starts (or keeps) a valid instance: warm on a claimed set, or cold.
async fn run_instance(
    ctx: &Context,
    inst: &Instance,
    world: &World,
    expires: Option<Timestamp>,
) -> Result<Action, Error> {
    let start = warm::resolve(ctx, inst, world).await?;
    if let Start::OverQuota(why) = &start {
        return over_quota(ctx, inst, why).await;
    }
    let ns = inst.namespace().unwrap_or_default();
    let values = generated_values(ctx, &ns, &inst.name_any(), &world.template).await?;
    let any_role = match ctx.caches()?.any_node_has_role() {
        Some(any) => any,
        None => crate::noderoles::any_node_has_role(&ctx.client).await?,
    };
    let input = Input {
        template: &world.template,
        tenant: &world.tenant,
        instance: inst,
        settings: &ctx.settings,
        any_node_has_role: any_role,
        generated: &values,
    };
    let desired = match build(&input) {
        Ok(d) => d,
        Err(problems) => {
            // The template was validated: what building refuses is the instance's.
            let f = Failure::from(resources::admission::Refusal::InvalidSpec(problems));
            fail(ctx, inst, &f).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(s) = &desired.secret {
        let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
        let cached = |k: &Caches, ns: &str, n: &str| k.secrets.get(ns, n).map(|s| s.meta.clone());
        apply_all(ctx, inst, &secrets, cached, std::slice::from_ref(s)).await?;
    }
    match start {
        Start::Warm { claim, pods } => warm::finish(ctx, inst, world, claim, pods, expires).await,
        Start::Cold { why } => cold::start(ctx, inst, world, &desired, why, expires).await,
        Start::OverQuota(_) => Ok(Action::await_change()),
    }
}

/// The instance is Failed, for the reason `f` names.
async fn fail(ctx: &Context, inst: &Instance, f: &Failure) -> Result<(), Error> {
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    write_status(ctx, &api, inst, base_status(inst, InstancePhase::Failed, f.reason, &f.message)).await
}

/// A Failed instance gives its pods and Services back at once (and with them
/// the tenant's quota), keeps its status to be read for
/// [`Settings::failed_retention`](crate::config::Settings::failed_retention),
/// and is deleted then. Nothing of it is started again.
async fn release_failed(ctx: &Context, inst: &Instance, since: Timestamp) -> Result<Action, Error> {
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
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
        write_status(ctx, &api, inst, s).await?;
    }
    delete_after(&api, inst, since, ctx.settings.failed_retention).await
}

/// Past expiry the instance's objects go; the Instance follows after [`RETENTION`].
async fn expire(ctx: &Context, inst: &Instance, at: Timestamp) -> Result<Action, Error> {
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    delete_instance_objects(&ctx.client, inst, &ctx.settings.pool_namespace).await?;
    let mut s =
        base_status(inst, InstancePhase::Expired, "Expired", "the instance's time ran out; its pods were removed");
    s.expires = Some(Time(at));
    s.pods.clear();
    s.endpoints.clear();
    write_status(ctx, &api, inst, s).await?;
    delete_after(&api, inst, at, RETENTION).await
}

/// Deletes the Instance once `retention` has passed since `since`; until
/// then, looks again when it has.
async fn delete_after(
    api: &Api<Instance>,
    inst: &Instance,
    since: Timestamp,
    retention: Duration,
) -> Result<Action, Error> {
    let gone_at = since.checked_add(SignedDuration::try_from(retention).unwrap_or_default()).unwrap_or(since);
    if Timestamp::now() >= gone_at {
        api.delete(&inst.name_any(), &DeleteParams::default()).await?;
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(Timestamp::now().duration_until(gone_at).unsigned_abs()))
}

/// Values for the instance Secret: kept when they exist, generated otherwise.
async fn generated_values(
    ctx: &Context,
    ns: &str,
    inst: &str,
    tpl: &Template,
) -> Result<BTreeMap<String, String>, Error> {
    let heartbeats = super::build::heartbeats(tpl);
    if generated_keys(tpl).is_empty() && !heartbeats {
        return Ok(BTreeMap::new());
    }
    let name = format!("{inst}-secrets");
    let have: BTreeMap<String, String> = match ctx.caches()?.secrets.get(ns, &name) {
        Some(s) => s.values.clone(),
        None => Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .get_opt(&name)
            .await?
            .map(|s| SecretBrief::of(&s).values)
            .unwrap_or_default(),
    };
    let mut rng = rand::rng();
    let mut values: BTreeMap<String, String> = generated_keys(tpl)
        .into_iter()
        .map(|(k, g)| {
            let v = have.get(&k).cloned().unwrap_or_else(|| generate_value(&g, |n| rng.random_range(0..n)));
            (k, v)
        })
        .collect();
    if heartbeats {
        // The instance's own heartbeat token: its pods (and whoever it is
        // given to) may say it is in use, and nothing else.
        let token = have.get(HEARTBEAT_TOKEN_KEY).cloned().unwrap_or_else(|| {
            let random = Generate::Random { length: 43, charset: None };
            format!("{HEARTBEAT_TOKEN_PREFIX}{}", generate_value(&random, |n| rng.random_range(0..n)))
        });
        values.insert(HEARTBEAT_TOKEN_KEY.to_string(), token);
    }
    Ok(values)
}

async fn cleanup(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.ledger.forget_owner(inst.metadata.uid.as_deref().unwrap_or_default());
    write_status(
        &ctx,
        &api,
        &inst,
        base_status(&inst, InstancePhase::Stopping, "Stopping", "removing the instance's pods"),
    )
    .await?;
    let left = super::cleanup::delete(&ctx.ledger, &ctx.client, &inst, &ctx.settings.pool_namespace).await?;
    if left > 0 {
        return Err(Error::Waiting(format!("{left} pods still terminating")));
    }
    // The finalizer goes next and the instance with it: nothing to wait for.
    ctx.ledger.forget(inst.as_ref());
    Ok(Action::await_change())
}

/// Whether the instance is this installation's, when several share the
/// cluster ([`crate::config::Settings::scope`]): in a namespace of its
/// prefix whose tenant its scoped watch shows. None: not known yet (a
/// tenant the watch has not shown).
fn ours(ctx: &Context, inst: &Instance) -> Result<Option<bool>, Error> {
    if ctx.settings.scope.is_none() {
        return Ok(Some(true));
    }
    let ns = inst.namespace().unwrap_or_default();
    let Some(tenant) = ns.strip_prefix(&ctx.settings.namespace_prefix) else {
        return Ok(Some(false));
    };
    // Being deleted with our finalizer (its tenant may be gone already):
    // ours to clean up, or its namespace would never finish terminating.
    if inst.metadata.deletion_timestamp.is_some() && inst.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Some(true));
    }
    Ok(ctx.caches()?.tenant(tenant).map(|_| true))
}

async fn reconcile(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    match ours(&ctx, &inst)? {
        Some(true) => {}
        // Another installation's: not even a finalizer of ours goes on it.
        Some(false) => return Ok(Action::await_change()),
        None => return Ok(Action::requeue(Duration::from_secs(5))),
    }
    let metrics = ctx.metrics.clone();
    let result = metrics.reconcile("instance", run_finalizer(inst.clone(), ctx.clone())).await;
    match &result {
        Ok(_) => ctx.failures.succeeded(&key(&inst)),
        Err(e) => {
            if let Some(why) = crate::error::refusal(e) {
                refused(&ctx, inst, &why).await;
            }
        }
    }
    result
}

async fn run_finalizer(inst: Arc<Instance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    let inst = ctx.ledger.newest(inst);
    if inst.metadata.deletion_timestamp.is_none() && !inst.finalizers().iter().any(|f| f == FINALIZER) {
        // A new instance: add the finalizer and go on in the same reconcile,
        // instead of waiting for the patch's watch event to come back through
        // the queue — that wait was most of a warm start.
        let with = ctx.ledger.write(inst.as_ref(), add_finalizer(&api, inst.as_ref(), FINALIZER)).await?;
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
    let index = ctx.index().clone();
    let feed = index.instances();
    let (store, instances) = (feed.store(), feed.subscribe().applied_objects());
    let instances = ctx.ledger.primary_events(instances);
    let controller = Controller::for_stream(instances, store).with_config(ctx.settings.controller_config());
    ctx.metrics.watch_instances(controller.store());
    let (controller, caches, background) = super::cache::wire(
        controller,
        &c,
        &index,
        &ctx.settings.pool_namespace,
        &ctx.ledger,
        ctx.tenant_stores.get().cloned(),
    );
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
