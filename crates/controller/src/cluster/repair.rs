//! What a tenant cluster's health means (pure): its phase, whether to repair
//! now and how, and the backoff between repairs.
//!
//! - Until Cluster API has provisioned it (control plane and workers ready)
//!   a cluster is `Provisioning`; after that an audit decides.
//! - Healthy (API server ready, every desired node Ready): `Running`; a
//!   cluster that was repaired gets the Event `Repaired`.
//! - Unhealthy: `Degraded` at once, then `Repairing`: each repair re-applies
//!   the desired Cluster API objects (which brings a MachineDeployment back
//!   to its replicas; the MachineHealthCheck replaces NotReady nodes), and
//!   an API server unreachable for longer than the rollout grace also gets
//!   a control-plane rollout (once per episode). Repairs are `repair_backoff`
//!   apart, doubling to `repair_cap`; after `repair_limit` repairs that did
//!   not help the cluster is `Failed` (audits go on, and a cluster that
//!   recovers by itself is `Running` again).

use crate::config::ClusterSettings;
use jiff::Timestamp;
use resources::cluster::{ClusterHealth, Repairs};
use std::time::Duration;

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Re-apply the objects.
    Reapply,
    /// Re-apply, and ask the control plane to roll out.
    Rollout,
}

/// The verdict of one look: phase, repair record, action and Event
/// (warning?, reason, note).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub phase: &'static str,
    pub repairs: Option<Repairs>,
    pub act: Option<Act>,
    pub event: Option<(bool, &'static str, String)>,
}

/// The wait after `attempts` repairs: backoff × 2^(attempts-1), capped.
pub fn backoff(attempts: u32, s: &ClusterSettings) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
    s.repair_backoff.saturating_mul(factor).min(s.repair_cap)
}

fn parse(t: &Option<String>) -> Option<Timestamp> {
    t.as_deref().and_then(|t| t.parse().ok())
}

fn later(now: Timestamp, d: Duration) -> String {
    now.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(now).to_string()
}

/// How long machines may be being provisioned before the nodes they should
/// be count as missing (a provider that cannot make machines, a machine the
/// health check keeps replacing): beyond Cluster API's own 10-minute node
/// startup timeout.
pub const PROVISIONING_GRACE: Duration = Duration::from_secs(20 * 60);

/// Whether a health record is healthy at `now`: the API server answers and
/// every node is Ready, or being provisioned for less than the grace.
pub fn healthy(h: &ClusterHealth, now: Timestamp) -> bool {
    let grace = jiff::SignedDuration::try_from(PROVISIONING_GRACE).unwrap_or(jiff::SignedDuration::MAX);
    let within = |since: Timestamp| now.duration_since(since) < grace;
    let provisioning = match parse(&h.provisioning_since) {
        Some(since) if !within(since) => 0,
        _ => h.provisioning_nodes,
    };
    h.api_server == "Healthy" && h.ready_nodes.saturating_add(provisioning) >= h.desired_nodes
}

/// Decides for a provisioned cluster with health `h`, given its previous
/// phase and repairs.
pub fn decide(
    now: Timestamp,
    phase: Option<&str>,
    prev: Option<&Repairs>,
    h: &ClusterHealth,
    s: &ClusterSettings,
) -> Verdict {
    if healthy(h, now) {
        let event = prev
            .filter(|r| r.attempts > 0)
            .map(|r| (false, "Repaired", format!("healthy again after {} repair(s)", r.attempts)));
        return Verdict { phase: "Running", repairs: None, act: None, event };
    }
    let api_down = h.api_server != "Healthy";
    let what = h.message.clone().unwrap_or_else(|| format!("{} of {} nodes Ready", h.ready_nodes, h.desired_nodes));
    let mut r = prev.cloned().unwrap_or_default();
    if api_down && r.unreachable_since.is_none() {
        r.unreachable_since = Some(now.to_string());
    }
    if !api_down {
        r.unreachable_since = None;
    }
    if r.attempts >= s.repair_limit {
        let event = (phase != Some("Failed")).then(|| {
            (true, "RepairsExhausted", format!("{} repairs did not make the cluster healthy: {what}", r.attempts))
        });
        return Verdict { phase: "Failed", repairs: Some(r), act: None, event };
    }
    if !matches!(phase, Some("Degraded" | "Repairing" | "Failed")) {
        r.next_repair = Some(now.to_string());
        let event = Some((true, "Degraded", what));
        return Verdict { phase: "Degraded", repairs: Some(r), act: None, event };
    }
    if parse(&r.next_repair).is_some_and(|t| t > now) {
        let phase = if r.attempts == 0 { "Degraded" } else { "Repairing" };
        return Verdict { phase, repairs: Some(r), act: None, event: None };
    }
    let grace_over = parse(&r.unreachable_since)
        .is_some_and(|t| now.duration_since(t) >= jiff::SignedDuration::try_from(s.rollout_grace).unwrap_or_default());
    let act = if api_down && grace_over && r.rollout.is_none() { Act::Rollout } else { Act::Reapply };
    if act == Act::Rollout {
        r.rollout = Some(now.to_string());
    }
    r.attempts += 1;
    r.last_kind = Some(if api_down { "ApiServer" } else { "Nodes" }.into());
    r.last_repair = Some(now.to_string());
    r.next_repair = Some(later(now, backoff(r.attempts, s)));
    let how = match act {
        Act::Rollout => "re-applied its objects and asked for a control-plane rollout",
        Act::Reapply => "re-applied its objects",
    };
    let event = Some((true, "Repairing", format!("repair {} of {}: {how} ({what})", r.attempts, s.repair_limit)));
    Verdict { phase: "Repairing", repairs: Some(r), act: Some(act), event }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(api: bool, ready: u32) -> ClusterHealth {
        ClusterHealth {
            api_server: if api { "Healthy" } else { "Unreachable" }.into(),
            ready_nodes: ready,
            desired_nodes: 3,
            provisioning_nodes: 0,
            provisioning_since: None,
            last_audit: None,
            message: None,
        }
    }

    #[test]
    fn machines_being_provisioned_are_no_fault() {
        let now: Timestamp = "2026-12-05T10:30:00Z".parse().unwrap();
        let mut h = health(true, 2);
        assert!(!healthy(&h, now), "a node short");
        h.provisioning_nodes = 1;
        h.provisioning_since = Some("2026-12-05T10:20:00Z".into());
        assert!(healthy(&h, now), "a scale under way");
        h.provisioning_since = Some("2026-12-05T10:05:00Z".into());
        assert!(!healthy(&h, now), "machines that never come up are a fault after the grace");
        h.provisioning_since = None;
        h.api_server = "Unreachable".into();
        assert!(!healthy(&h, now));
    }

    #[test]
    fn degraded_then_repairs_with_backoff_then_failed() {
        let s = ClusterSettings { rollout_grace: Duration::from_secs(60), ..ClusterSettings::default() };
        let t0: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        let v = decide(t0, Some("Running"), None, &health(false, 0), &s);
        assert_eq!((v.phase, v.act), ("Degraded", None));
        let v = decide(t0, Some("Degraded"), v.repairs.as_ref(), &health(false, 0), &s);
        assert_eq!((v.phase, v.act), ("Repairing", Some(Act::Reapply)), "the grace is not over");
        let r = v.repairs.unwrap();
        assert_eq!((r.attempts, r.next_repair.as_deref()), (1, Some("2026-12-05T10:00:30Z")));
        let early = decide(t0 + Duration::from_secs(10), Some("Repairing"), Some(&r), &health(false, 0), &s);
        assert_eq!(early.act, None);
        let t1 = t0 + Duration::from_secs(61);
        let v = decide(t1, Some("Repairing"), Some(&r), &health(false, 0), &s);
        assert_eq!(v.act, Some(Act::Rollout));
        let r = v.repairs.unwrap();
        assert_eq!(r.next_repair.as_deref(), Some("2026-12-05T10:02:01Z"), "60 s after the second");
        let t2 = t1 + Duration::from_secs(120);
        let v = decide(t2, Some("Repairing"), Some(&r), &health(false, 0), &s);
        assert_eq!(v.act, Some(Act::Reapply), "one rollout per episode");
        let mut r = v.repairs.unwrap();
        r.attempts = 5;
        let v = decide(t2, Some("Repairing"), Some(&r), &health(false, 0), &s);
        assert_eq!((v.phase, v.event.unwrap().1), ("Failed", "RepairsExhausted"));
        let v = decide(t2, Some("Failed"), Some(&r), &health(true, 3), &s);
        assert_eq!((v.phase, v.repairs, v.event.unwrap().1), ("Running", None, "Repaired"));
        assert_eq!(backoff(1, &s), Duration::from_secs(30));
        assert_eq!(backoff(4, &s), Duration::from_secs(240));
        assert_eq!(backoff(40, &s), Duration::from_secs(600));
    }
}
