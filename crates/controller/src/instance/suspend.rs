//! Suspended instances (`spec.suspend`, set on request or by the idle
//! reaper, [`super::idle`]): a suspended instance keeps everything but its
//! pods — its Secret (so its generated values stay the same), Services,
//! ConfigMaps, policies, storage and lifetime — and so holds no pod, CPU or
//! memory quota. Setting `spec.suspend` back to false resumes it through the
//! same path as a start (from the warm pool when its template has one), so
//! the quota is checked again.

use super::context::{Context, Error};
use super::status::{base_status, write_status};
use super::world::World;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use resources::Instance;
use resources::instance::{InstancePhase, SUSPEND_REASON};
use std::time::Duration;

/// How often the deletes are sent again while the suspended instance's
/// pods are still there (a controller restart, a delete lost on the way).
const DELETE_AGAIN: Duration = Duration::from_secs(15);

/// While pods are stopping, the instance is looked at again this soon.
const STOPPING_LOOK: Duration = Duration::from_secs(1);

/// The Ready condition's reason of a suspended instance: `IdleSuspended`
/// when the idle reaper suspended it, `Suspended` otherwise; while its pods
/// are still stopping, `IdleSuspending` or `Suspending`.
pub fn reason(inst: &Instance, stopping: bool) -> &'static str {
    match (for_idleness(inst), stopping) {
        (true, true) => "IdleSuspending",
        (true, false) => "IdleSuspended",
        (false, true) => "Suspending",
        (false, false) => "Suspended",
    }
}

/// Whether the idle reaper suspended the instance (its annotation says so).
fn for_idleness(inst: &Instance) -> bool {
    inst.annotations().get(SUSPEND_REASON).map(String::as_str) == Some("Idle")
}

/// Removes a suspended instance's pods (at its first reconcile as
/// suspended, and again now and then while some are left) and says so in
/// its status; looks again until they are gone, then at its expiry only.
pub async fn suspend(
    ctx: &Context,
    inst: &Instance,
    world: &World,
    expires: Option<Timestamp>,
) -> Result<Action, Error> {
    let (ns, name) = (inst.namespace().unwrap_or_default(), inst.name_any());
    let first = inst.status.as_ref().is_none_or(|s| s.suspended.is_none());
    let left = pods_left(ctx, inst, world)?;
    let due = ctx.ledger.due("Suspend", (&ns, &name), DELETE_AGAIN);
    if first || (left > 0 && due) {
        super::cleanup::delete_pods(&ctx.client, inst, &ctx.settings.pool_namespace).await?;
    }
    let stopping = first || left > 0;
    let why = if for_idleness(inst) { "nobody used it for a while" } else { "as asked" };
    let message = if stopping {
        format!("suspended ({why}); its pods are stopping")
    } else {
        format!(
            "suspended ({why}); its pods were removed, so it holds no pod, CPU or memory quota; resume it to start \
             them again"
        )
    };
    let mut s = base_status(inst, InstancePhase::Suspended, reason(inst, stopping), &message);
    s.suspended = s.suspended.or(Some(MicroTime(Timestamp::now())));
    s.pods.clear();
    s.endpoints.clear();
    s.claim = None;
    s.warm = None;
    s.expires = expires.map(Time);
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    write_status(ctx, &api, inst, s).await?;
    if stopping {
        return Ok(Action::requeue(STOPPING_LOOK));
    }
    Ok(match expires {
        Some(at) => Action::requeue(Timestamp::now().duration_until(at).unsigned_abs() + Duration::from_millis(50)),
        None => Action::await_change(),
    })
}

/// How many of the instance's pods the caches still show: its own (named
/// `<instance>-<pod>`) and any claimed for it in the pool namespace.
fn pods_left(ctx: &Context, inst: &Instance, world: &World) -> Result<usize, Error> {
    let k = ctx.caches()?;
    let (ns, name) = (inst.namespace().unwrap_or_default(), inst.name_any());
    let own = world.template.spec.pods.iter().filter(|p| k.pods.get(&ns, &format!("{name}-{}", p.name)).is_some());
    let uid = inst.metadata.uid.as_deref().unwrap_or_default();
    let claimed = usize::from(!k.none_claimed_for(uid));
    Ok(own.count() + claimed)
}
