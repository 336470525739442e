//! The instance reconciler's decision step, `validate`: pure, from the
//! instance and its [`World`], what this reconcile does — fail it (a typed
//! rule, [`resources::admission::Refusal`], the same the API's start checks
//! use), give a failed one's pods back, expire it, or start it.

use super::world::World;
use crate::config::Settings;
use jiff::{SignedDuration, Timestamp};
use resources::admission::{Refusal, not_deleting, valid, within_limit};
use resources::instance::InstancePhase;
use resources::template::parse_duration;
use resources::{Instance, Template};

/// Why an instance fails: the reason its conditions name, and the words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn template_missing(template: &str) -> Failure {
        Failure { reason: "TemplateInvalid", message: format!("template {template:?} does not exist") }
    }

    pub fn not_a_tenant_namespace(ns: &str) -> Failure {
        Failure {
            reason: "NotATenantNamespace",
            message: format!("namespace {ns} does not belong to a Paddock tenant"),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure { reason: r.reason(), message: r.to_string() }
    }
}

/// What one reconcile of an instance does.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// It cannot run: Failed, with the reason.
    Fail(Failure),
    /// It failed (at this time): its pods go, it is deleted after a retention.
    ReleaseFailed(Timestamp),
    /// Its time ran out (at this time): its pods go, it follows after a retention.
    Expire(Timestamp),
    /// It is suspended (`spec.suspend`): its pods go, the rest stays.
    Suspend,
    /// It runs (or starts), until `expires` if it has a lifetime.
    Run { expires: Option<Timestamp> },
}

/// Decides what to do with `inst` at `now`.
pub fn validate(inst: &Instance, world: &World, settings: &Settings, now: Timestamp) -> Decision {
    let tpl = &world.template;
    if let Some(since) = failed_since(inst, now) {
        return Decision::ReleaseFailed(since);
    }
    let expires = expiry(inst, Some(tpl));
    if let Some(at) = expires.filter(|at| now >= *at) {
        return Decision::Expire(at);
    }
    if inst.spec.suspend {
        return Decision::Suspend;
    }
    // Past these once (it started, warm or cold), an instance keeps running.
    let admitted = inst.status.as_ref().is_some_and(|s| s.admitted());
    let admission = if admitted { Ok(()) } else { not_deleting(tpl).and_then(|()| within_limit(tpl, world.ahead)) };
    let checked = admission.and_then(|()| valid(tpl, inst, &settings.template_policy(), settings.max_instance_ttl));
    match checked {
        Ok(()) => Decision::Run { expires },
        Err(r) => Decision::Fail(r.into()),
    }
}

/// When a Failed instance failed (its Ready condition's transition), if it is Failed.
fn failed_since(inst: &Instance, now: Timestamp) -> Option<Timestamp> {
    let s = inst.status.as_ref().filter(|s| s.phase == Some(InstancePhase::Failed))?;
    Some(s.conditions.iter().find(|c| c.type_ == "Ready").map_or(now, |c| c.last_transition_time.0))
}

/// When the instance expires (creation + ttl), if it has a lifetime.
pub fn expiry(inst: &Instance, tpl: Option<&Template>) -> Option<Timestamp> {
    let ttl = inst.spec.ttl.as_deref().or(tpl.and_then(|t| t.spec.ttl.as_deref())).and_then(parse_duration)?;
    let created = inst.metadata.creation_timestamp.as_ref()?.0;
    // Bounded (durations read at most ten years), and checked all the same.
    created.checked_add(SignedDuration::try_from(ttl).ok()?).ok()
}
