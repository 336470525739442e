//! Writing an instance's status: its Ready condition and phase, the Events
//! its changes make, start-latency observations, and saying why an instance
//! is stuck when the API server refuses the controller's writes.

use super::context::{Context, Error};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use resources::Instance;
use resources::instance::{InstancePhase, InstanceStatus, REQUESTED_AT};
use std::sync::Arc;

pub(super) fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    old: &[Condition],
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let keep = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: keep.unwrap_or(Time(Timestamp::now())),
    }
}

/// Writes the status if it changed; a condition that changed becomes an
/// Event, and the first Ready a start-latency observation.
pub(super) async fn write_status(
    ctx: &Context,
    api: &Api<Instance>,
    inst: &Instance,
    status: InstanceStatus,
) -> Result<(), Error> {
    if inst.status.as_ref() == Some(&status) {
        return Ok(());
    }
    // Every field that went empty named with null (a cleared list, a gone claim).
    let patch = Patch::Merge(serde_json::json!({"status": crate::merge::of(inst.status.as_ref(), &status)}));
    ctx.ledger.write(inst, api.patch_status(&inst.name_any(), &PatchParams::default(), &patch)).await?;
    let old = inst.status.as_ref();
    for (warning, reason, note) in super::status_events::transitions(old, &status) {
        ctx.events.record("Instance", inst.object_ref(&()), warning, reason, note);
    }
    if old.is_some_and(|o| o.suspended.is_some()) && status.suspended.is_none() {
        ctx.metrics.resumed(&inst.spec.template);
        let note = "resumed: its pods are starting again, with the same generated values".to_string();
        ctx.events.record("Instance", inst.object_ref(&()), false, "Resumed", note);
    }
    if old.and_then(|s| s.ready.as_ref()).is_none()
        && let (Some(ready), Some(from)) = (&status.ready, requested_at(inst))
    {
        let since = |t: &Option<MicroTime>| t.as_ref().map(|t| from.duration_until(t.0).as_secs_f64().max(0.0));
        let ready = from.duration_until(ready.0).as_secs_f64().max(0.0);
        ctx.metrics.started(status.warm == Some(true), since(&status.scheduled), since(&status.pulled), ready);
    }
    Ok(())
}

/// When the instance was asked for: the API's request time, or its creation.
pub(super) fn requested_at(inst: &Instance) -> Option<Timestamp> {
    inst.annotations().get(REQUESTED_AT).and_then(|t| t.parse::<Timestamp>().ok()).or(inst
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0))
}

pub(super) fn base_status(inst: &Instance, phase: InstancePhase, reason: &str, message: &str) -> InstanceStatus {
    let mut s = inst.status.clone().unwrap_or_default();
    let ok = matches!(phase, InstancePhase::Running);
    s.conditions = vec![cond("Ready", ok, reason, message, &s.conditions, inst.metadata.generation)];
    s.phase = Some(phase);
    s.observed_generation = inst.metadata.generation;
    s
}

pub(super) fn key(inst: &Instance) -> String {
    format!("{}/{}", inst.namespace().unwrap_or_default(), inst.name_any())
}

/// Says on the instance why it is stuck, instead of only in the
/// controller's log: a Warning Event, and for an instance not yet running
/// its Ready condition (reason `ApiRefused`).
pub(super) async fn refused(ctx: &Context, inst: Arc<Instance>, why: &str) {
    let inst = ctx.ledger.newest(inst);
    if inst.metadata.deletion_timestamp.is_some() {
        return;
    }
    let msg = format!("the Kubernetes API server refused a write: {why}; retrying with back-off");
    let phase = inst.status.as_ref().and_then(|s| s.phase).unwrap_or(InstancePhase::Pending);
    if !matches!(phase, InstancePhase::Pending | InstancePhase::Scheduling | InstancePhase::Starting) {
        // A running instance stays as it is; the Event says what failed.
        ctx.events.record("Instance", inst.object_ref(&()), true, "ApiRefused", msg);
        return;
    }
    // The condition's change becomes the Warning Event (`notice`).
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    if let Err(e) = write_status(ctx, &api, &inst, base_status(&inst, phase, "ApiRefused", &msg)).await {
        tracing::debug!(instance = %inst.name_any(), error = %e, "cannot say on the instance why it is stuck");
    }
}
/// The instance is Pending because the tenant's quota does not allow it
/// (`why`); it is looked at again after [`crate::quota::Refusals::RETRY`].
pub(super) async fn over_quota(ctx: &Context, inst: &Instance, why: &str) -> Result<Action, Error> {
    let msg = format!("the tenant's quota does not allow this instance: {why}");
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    write_status(ctx, &api, inst, base_status(inst, InstancePhase::Pending, "QuotaExceeded", &msg)).await?;
    Ok(Action::requeue(crate::quota::Refusals::RETRY))
}
