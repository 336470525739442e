//! Idle reaping: an instance whose template has `spec.idle` and that shows
//! no sign of use for `idle.after` is suspended (`spec.suspend`, with an
//! annotation saying it was for idleness) or stopped. The signs of use are
//! heartbeats (`status.lastActivity`, which the API writes), a resume, and
//! the instance becoming Ready; the clock counts from the newest. With the
//! Http signal, the instance's activity endpoint is asked when the
//! deadline comes ([`super::activity`]), before anything is reaped. An
//! instance is checked when it is reconciled and, through its requeue, at
//! its deadline: no polling, and no request until it is due.

use super::context::{Context, Error};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use resources::instance::{InstancePhase, InstanceStatus, SUSPEND_REASON};
use resources::template::{Idle, IdleAction, IdleSignal};
use resources::{Instance, Template};
use serde_json::json;

/// When an instance with status `s` counts as idle, if its template reaps
/// idle instances and it is running (an instance on its way, suspended or
/// failed is not idle: its ttl bounds it).
pub fn deadline(s: &InstanceStatus, tpl: &Template) -> Option<Timestamp> {
    let period = tpl.spec.idle.as_ref()?.period()?;
    if !matches!(s.phase, Some(InstancePhase::Running | InstancePhase::Degraded)) {
        return None;
    }
    since(s)?.checked_add(SignedDuration::try_from(period).ok()?).ok()
}

/// The newest sign of use on record: the last activity, or becoming Ready.
fn since(s: &InstanceStatus) -> Option<Timestamp> {
    [s.last_activity.as_ref(), s.ready.as_ref()].into_iter().flatten().map(|t| t.0).max()
}

/// With the Http signal: asks the instance when it was last used. A use
/// newer than the record that puts the deadline in the future is written
/// (`Some`: the status write's event brings the instance back with its new
/// deadline); an endpoint that cannot tell is said in a Warning Event and
/// counts as no sign of use.
async fn asked(ctx: &Context, inst: &Instance, tpl: &Template, idle: &Idle) -> Result<Option<Action>, Error> {
    let (Some(h), Some(period)) = (idle.http.as_ref().filter(|_| idle.signal == IdleSignal::Http), idle.period())
    else {
        return Ok(None);
    };
    let status = inst.status.clone().unwrap_or_default();
    match super::activity::last_used(ctx, inst, tpl, h).await {
        Ok(at)
            if since(&status).is_none_or(|s| at > s)
                && SignedDuration::try_from(period)
                    .ok()
                    .and_then(|p| at.checked_add(p).ok())
                    .is_some_and(|d| d > Timestamp::now()) =>
        {
            let (ns, name) = (inst.namespace().unwrap_or_default(), inst.name_any());
            let patch = json!({"metadata": {"resourceVersion": inst.metadata.resource_version},
                "status": {"lastActivity": MicroTime(at)}});
            let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => Ok(Some(Action::await_change())),
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(Some(Action::await_change())),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) => Ok(None),
        Err(why) => {
            let note = format!("could not ask it when it was last used ({why}); counted as no sign of use");
            ctx.events.record("Instance", inst.object_ref(&()), true, "IdleProbeFailed", note);
            Ok(None)
        }
    }
}

/// Suspends or stops an idle instance, as its template says. Both writes
/// are guarded by the resourceVersion the decision was made on: a heartbeat
/// written meanwhile makes them fail (409), and the next reconcile decides
/// again with it.
pub async fn reap(ctx: &Context, inst: &Instance, tpl: &Template) -> Result<Action, Error> {
    let Some(idle) = tpl.spec.idle.as_ref() else {
        return Ok(Action::await_change());
    };
    if let Some(used) = asked(ctx, inst, tpl, idle).await? {
        return Ok(used);
    }
    let (ns, name) = (inst.namespace().unwrap_or_default(), inst.name_any());
    let api: Api<Instance> = Api::namespaced(ctx.client.clone(), &ns);
    let version = inst.metadata.resource_version.clone();
    let outcome = match idle.action {
        IdleAction::Suspend => {
            let patch = json!({"metadata": {"resourceVersion": version, "annotations": {SUSPEND_REASON: "Idle"}},
                "spec": {"suspend": true}});
            // Not through the ledger: this change's watch event is what
            // brings the instance back, to be suspended.
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
        }
        IdleAction::Stop => {
            let pre = Preconditions { resource_version: version, uid: inst.metadata.uid.clone() };
            let dp = DeleteParams { preconditions: Some(pre), ..DeleteParams::default() };
            api.delete(&name, &dp).await.map(|_| ())
        }
    };
    match outcome {
        Ok(()) => {
            tracing::info!(instance = %name, namespace = %ns, action = ?idle.action, after = %idle.after, "idle instance reaped");
            ctx.metrics.idle_reaped(&tpl.name_any(), idle.action);
            if idle.action == IdleAction::Stop {
                let note = format!("nobody used it for {}; stopped", idle.after);
                ctx.events.record("Instance", inst.object_ref(&()), false, "IdleStopped", note);
            }
            Ok(Action::await_change())
        }
        // Used meanwhile (or already gone): the watch event brings it back.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
