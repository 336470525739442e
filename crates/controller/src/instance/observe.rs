//! An instance's status as its pods and Services are now (phase, pods,
//! start milestones, endpoints), and when to look at it again.

use super::cache::ServiceBrief;
use super::phase::{PodBrief, aggregate_briefs};
use super::status::base_status;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::runtime::controller::Action;
use resources::instance::{EndpointStatus, InstancePhase, InstanceStatus};
use resources::{Instance, Template};
use std::time::Duration;

/// The condition saying whether the instance started warm, and why not.
pub const WARM_START: &str = "WarmStart";

/// While an instance is on its way (pending, scheduling, starting), it is
/// looked at again after this long even if no watch event comes. Still
/// needed after the ledger (which loses no event: one that comes during a
/// write waits for its answer) because an instance on its way reads its
/// Template, Tenant and namespace from watches that do not trigger it, and
/// this bounds how long a change there goes unseen.
const ON_THE_WAY_LOOK: Duration = Duration::from_secs(10);

/// When to reconcile again an instance whose new status is `s`: at its
/// expiry or its idle deadline ([`super::idle::deadline`]), whichever comes
/// first, and sooner while it is on its way to Running.
pub fn next_look(s: &InstanceStatus, tpl: &Template, expires: Option<Timestamp>) -> Action {
    let wake = match (expires, super::idle::deadline(s, tpl)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    requeue_after(wake, s.phase)
}

/// When to reconcile again without a watch event: at `wake` (an expiry or
/// an idle deadline), and sooner while the instance is on its way to Running.
pub fn requeue_after(expires: Option<Timestamp>, phase: Option<InstancePhase>) -> Action {
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

/// Status from an instance's pods and Services as they are now; `stem` and
/// `ns` make the pods' DNS names (`<pod>.<stem>.<ns>.svc`).
pub fn observe(
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
    // Resuming: a resume is a sign of use, and the idle clock starts again.
    if s.suspended.take().is_some() {
        s.last_activity = Some(MicroTime(Timestamp::now()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

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
