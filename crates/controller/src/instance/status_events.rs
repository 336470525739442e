//! Which status changes of an instance a user should be told about as a
//! Kubernetes Event: a condition whose status or reason changed, except the
//! progress steps a start goes through every time (creating, scheduling,
//! starting), which would only be noise; a warm start's claim and its
//! Running are one Event.

use resources::instance::InstanceStatus;

/// Reasons of the `Ready` condition that are only progress.
const PROGRESS: &[&str] = &["Creating", "Scheduling", "Starting", "Suspending", "IdleSuspending"];
/// Reasons of the `Ready` condition that need someone's attention.
const WARNINGS: &[&str] = &[
    "Unschedulable",
    "ImagePullFailed",
    "PodFailed",
    "CrashLoop",
    "NotReady",
    "QuotaExceeded",
    "ApiRefused",
    "LimitReached",
    "TemplateInvalid",
    "TemplateDeleting",
    "InvalidSpec",
    "NotATenantNamespace",
];

/// The Events (warning?, reason, note) for going from `old` to `new`.
pub fn transitions(old: Option<&InstanceStatus>, new: &InstanceStatus) -> Vec<(bool, &'static str, String)> {
    let mut out = Vec::new();
    for c in &new.conditions {
        let seen = old.is_some_and(|o| {
            o.conditions.iter().any(|x| x.type_ == c.type_ && x.status == c.status && x.reason == c.reason)
        });
        if seen {
            continue;
        }
        let event = match (c.type_.as_str(), c.reason.as_str()) {
            ("Ready", "Ready") => Some((false, "Running")),
            ("Ready", "Expired") => Some((false, "Expired")),
            ("Ready", "Stopping") => Some((false, "Stopping")),
            ("Ready", "Suspended") => Some((false, "Suspended")),
            ("Ready", "IdleSuspended") => Some((false, "IdleSuspended")),
            ("Ready", r) if PROGRESS.contains(&r) => None,
            ("Ready", r) => WARNINGS.iter().find(|w| **w == r).map(|w| (true, *w)),
            ("WarmStart", "Claimed") => Some((false, "Claimed")),
            ("WarmStart", _) => Some((false, "ColdStart")),
            _ => None,
        };
        out.extend(event.map(|(warning, reason)| (warning, reason, c.message.clone())));
    }
    // A warm start is one Event, not two: each is a write the API server
    // serves, and a warm claim's own writes are kept to the few it needs.
    if let Some(claimed) = out.iter().position(|e| e.1 == "Claimed")
        && let Some(running) = out.iter().position(|e| e.1 == "Running")
    {
        let (_, _, how) = out.remove(claimed);
        let running = if claimed < running { running - 1 } else { running };
        out[running].2 = format!("{}; {how}", out[running].2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(conds: &[(&str, &str, &str)]) -> InstanceStatus {
        serde_json::from_value(serde_json::json!({"conditions": conds.iter().map(|(t, s, r)| serde_json::json!({
            "type": t, "status": s, "reason": r, "message": format!("{t} {r}"),
            "lastTransitionTime": "2026-01-01T00:00:00Z"})).collect::<Vec<_>>()}))
        .unwrap()
    }

    #[test]
    fn a_start_reports_the_outcome_not_the_steps() {
        let creating = status(&[("Ready", "False", "Creating")]);
        assert!(transitions(None, &creating).is_empty());
        let running = status(&[("Ready", "True", "Ready"), ("WarmStart", "True", "Claimed")]);
        assert_eq!(
            transitions(Some(&creating), &running),
            vec![(false, "Running", "Ready Ready; WarmStart Claimed".to_string())],
            "a warm start is one Event"
        );
        let claimed_before = status(&[("Ready", "False", "Starting"), ("WarmStart", "True", "Claimed")]);
        assert_eq!(
            transitions(Some(&creating), &claimed_before),
            vec![(false, "Claimed", "WarmStart Claimed".to_string())]
        );
        assert!(transitions(Some(&running), &running).is_empty(), "no change, no event");
    }

    #[test]
    fn problems_are_warnings_and_cold_starts_are_explained() {
        let quota = status(&[("Ready", "False", "QuotaExceeded")]);
        assert_eq!(transitions(None, &quota), vec![(true, "QuotaExceeded", "Ready QuotaExceeded".to_string())]);
        let cold = status(&[("WarmStart", "False", "PoolEmpty")]);
        assert_eq!(transitions(None, &cold), vec![(false, "ColdStart", "WarmStart PoolEmpty".to_string())]);
        let expired = status(&[("Ready", "False", "Expired")]);
        assert_eq!(transitions(Some(&quota), &expired)[0].1, "Expired");
    }
}
