//! An instance's phase as a pure function of its pods' states, with the
//! plain-language reason a user sees.

use k8s_openapi::api::core::v1::Pod;
use resources::InstancePhase;
use resources::instance::PodState;

/// Restarts after which a pod counts as crashing even between back-offs.
pub const CRASH_RESTARTS: i32 = 5;

const IMAGE_ERRORS: &[&str] = &["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub phase: InstancePhase,
    pub reason: &'static str,
    pub message: String,
}

fn outcome(phase: InstancePhase, reason: &'static str, message: impl Into<String>) -> Outcome {
    Outcome { phase, reason, message: message.into() }
}

/// What an instance's status is made from of one pod: its state as the
/// status shows it and, when an image cannot be pulled, which image. Small
/// on purpose: the instance controller's watch cache keeps one per pod
/// instead of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodBrief {
    pub state: PodState,
    pub failing_image: Option<String>,
    /// The uid of the Instance a warm pod is claimed for.
    pub claim: Option<String>,
}

impl PodBrief {
    /// `name` is the template's pod name.
    pub fn of(name: &str, pod: &Pod) -> Self {
        let state = pod_state(name, pod);
        let failing = state.reason.as_deref().is_some_and(|r| IMAGE_ERRORS.contains(&r));
        Self {
            failing_image: failing.then(|| image_of(pod)),
            claim: pod.metadata.labels.as_ref().and_then(|l| l.get(resources::vocabulary::CLAIM)).cloned(),
            state,
        }
    }

    /// [`PodBrief::of`] a pod of an instance, named by its `paddock.dev/pod` label.
    pub fn of_labelled(pod: &Pod) -> Self {
        let labelled = pod.metadata.labels.as_ref().and_then(|l| l.get(resources::vocabulary::POD));
        Self::of(labelled.or(pod.metadata.name.as_ref()).map(String::as_str).unwrap_or_default(), pod)
    }
}

/// What the status shows of one pod (name is the template's pod name).
pub fn pod_state(name: &str, pod: &Pod) -> PodState {
    let st = pod.status.clone().unwrap_or_default();
    let ready = st.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    let statuses = st.container_statuses.clone().unwrap_or_default();
    let restarts = statuses.iter().map(|c| c.restart_count).sum();
    let waiting = statuses.iter().find_map(|c| c.state.as_ref().and_then(|s| s.waiting.clone()));
    let unscheduled = st.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
    let (reason, message) = match (&waiting, unscheduled) {
        (Some(w), _) => (w.reason.clone(), w.message.clone()),
        (None, Some(c)) => (c.reason.clone(), c.message.clone()),
        _ => (st.reason.clone(), st.message.clone()),
    };
    PodState {
        name: name.to_string(),
        phase: st.phase.clone(),
        ready,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        pod_ip: st.pod_ip.clone(),
        restarts,
        reason,
        message,
    }
}

fn image_of(pod: &Pod) -> String {
    let st = pod.status.clone().unwrap_or_default();
    st.container_statuses
        .iter()
        .flatten()
        .find(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| IMAGE_ERRORS.contains(&r))
        })
        .map(|c| c.image.clone())
        .unwrap_or_default()
}

/// The phase of an instance expecting `expected` pods, given the pods that exist
/// (template pod name, pod), whether it is being deleted or has expired, and
/// whether it has been Running before.
pub fn aggregate(expected: usize, pods: &[(String, Pod)], deleting: bool, expired: bool, was_running: bool) -> Outcome {
    let briefs: Vec<PodBrief> = pods.iter().map(|(n, p)| PodBrief::of(n, p)).collect();
    aggregate_briefs(expected, &briefs, deleting, expired, was_running)
}

/// [`aggregate`] from the pods' briefs.
pub fn aggregate_briefs(
    expected: usize,
    pods: &[PodBrief],
    deleting: bool,
    expired: bool,
    was_running: bool,
) -> Outcome {
    use InstancePhase::*;
    if expired {
        return outcome(Expired, "Expired", "the instance's time ran out; its pods were removed");
    }
    if deleting {
        return outcome(Stopping, "Stopping", "the instance is being stopped");
    }
    let states: Vec<(&PodState, &PodBrief)> = pods.iter().map(|b| (&b.state, b)).collect();
    if let Some((s, _)) = states.iter().find(|(s, _)| s.phase.as_deref() == Some("Failed")) {
        let why = s.message.clone().or(s.reason.clone()).unwrap_or_else(|| "it stopped with an error".into());
        return outcome(Failed, "PodFailed", format!("pod {} failed: {why}", s.name));
    }
    if let Some((s, p)) = states.iter().find(|(s, _)| s.reason.as_deref().is_some_and(|r| IMAGE_ERRORS.contains(&r))) {
        return outcome(
            Failed,
            "ImagePullFailed",
            format!(
                "pod {} cannot pull image {}: {}",
                s.name,
                p.failing_image.as_deref().unwrap_or_default(),
                s.message.clone().unwrap_or_default()
            ),
        );
    }
    // The kubelet cannot create a container from its spec (runAsNonRoot on an
    // image that runs as root, a missing Secret key): it retries, but only a
    // change of the template (or the Secret) helps.
    if let Some((s, _)) = states.iter().find(|(s, _)| s.reason.as_deref() == Some("CreateContainerConfigError")) {
        let why = s.message.clone().unwrap_or_default();
        return outcome(Degraded, "ContainerConfigError", format!("pod {} cannot create its container: {why}", s.name));
    }
    if let Some((s, _)) =
        states.iter().find(|(s, _)| s.reason.as_deref() == Some("CrashLoopBackOff") || s.restarts >= CRASH_RESTARTS)
    {
        return outcome(Degraded, "CrashLoop", format!("pod {} keeps crashing ({} restarts)", s.name, s.restarts));
    }
    if states.len() < expected {
        return outcome(Pending, "Creating", format!("{} of {expected} pods created", states.len()));
    }
    let unscheduled: Vec<&PodState> = states.iter().map(|(s, _)| *s).filter(|s| s.node.is_none()).collect();
    if let Some(s) = unscheduled.iter().find(|s| s.reason.as_deref() == Some("Unschedulable")) {
        return outcome(
            Scheduling,
            "Unschedulable",
            format!("pod {} cannot be scheduled: {}", s.name, s.message.clone().unwrap_or_default()),
        );
    }
    if !unscheduled.is_empty() {
        return outcome(
            Scheduling,
            "Scheduling",
            format!("{} of {expected} pods scheduled", expected - unscheduled.len()),
        );
    }
    let ready = states.iter().filter(|(s, _)| s.ready).count();
    if ready == expected {
        let all = if expected == 1 { "its pod is ready".to_string() } else { format!("all {expected} pods are ready") };
        return outcome(Running, "Ready", all);
    }
    if was_running {
        let names: Vec<&str> = states.iter().filter(|(s, _)| !s.ready).map(|(s, _)| s.name.as_str()).collect();
        return outcome(Degraded, "NotReady", format!("not ready: {}", names.join(", ")));
    }
    let pulling = states.iter().any(|(s, _)| s.reason.as_deref() == Some("ContainerCreating"));
    outcome(
        Starting,
        "Starting",
        format!("{ready} of {expected} pods ready{}", if pulling { "; pulling images" } else { "" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }
    fn running(ready: bool) -> Pod {
        pod(json!({"spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready, "restartCount": 0, "state": {"running": {}}}]}}))
    }
    fn waiting(reason: &str, restarts: i32) -> Pod {
        pod(json!({"spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Pending",
            "containerStatuses": [{"name": "c", "image": "registry.example/bad:1", "imageID": "", "ready": false, "restartCount": restarts,
                "state": {"waiting": {"reason": reason, "message": "boom"}}}]}}))
    }
    fn unscheduled(msg: Option<&str>) -> Pod {
        let conds = match msg {
            Some(m) => json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": m}]),
            None => json!([]),
        };
        pod(json!({"spec": {"containers": []}, "status": {"phase": "Pending", "conditions": conds}}))
    }
    fn named(list: Vec<Pod>) -> Vec<(String, Pod)> {
        list.into_iter().enumerate().map(|(i, p)| (format!("p{i}"), p)).collect()
    }

    #[test]
    fn a_container_the_kubelet_cannot_create_degrades_the_instance() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"nodeName": "n", "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "image": "postgres:16", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerConfigError",
                "message": "container has runAsNonRoot and image will run as root"}}}]}}))
        .unwrap();
        let o = aggregate(1, &[("db".to_string(), pod)], false, false, false);
        assert_eq!((o.phase, o.reason), (InstancePhase::Degraded, "ContainerConfigError"));
        assert!(o.message.contains("image will run as root"), "{}", o.message);
    }

    #[test]
    fn expired_and_stopping_win() {
        assert_eq!(aggregate(1, &named(vec![running(true)]), true, true, true).phase, InstancePhase::Expired);
        assert_eq!(aggregate(1, &named(vec![running(true)]), true, false, true).phase, InstancePhase::Stopping);
    }

    #[test]
    fn no_pods_yet_is_pending() {
        let o = aggregate(2, &[], false, false, false);
        assert_eq!(
            (o.phase, o.reason, o.message.as_str()),
            (InstancePhase::Pending, "Creating", "0 of 2 pods created")
        );
    }

    #[test]
    fn unschedulable_pods_carry_the_scheduler_message() {
        let o = aggregate(
            2,
            &named(vec![running(true), unscheduled(Some("0/3 nodes are available: 3 Insufficient cpu."))]),
            false,
            false,
            false,
        );
        assert_eq!((o.phase, o.reason), (InstancePhase::Scheduling, "Unschedulable"));
        assert_eq!(o.message, "pod p1 cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu.");
        assert_eq!(aggregate(1, &named(vec![unscheduled(None)]), false, false, false).reason, "Scheduling");
    }

    #[test]
    fn starting_running_and_degraded() {
        let o = aggregate(2, &named(vec![running(true), waiting("ContainerCreating", 0)]), false, false, false);
        assert_eq!((o.phase, o.message.as_str()), (InstancePhase::Starting, "1 of 2 pods ready; pulling images"));
        let o = aggregate(2, &named(vec![running(true), running(true)]), false, false, false);
        assert_eq!((o.phase, o.message.as_str()), (InstancePhase::Running, "all 2 pods are ready"));
        let o = aggregate(1, &named(vec![running(true)]), false, false, false);
        assert_eq!((o.phase, o.message.as_str()), (InstancePhase::Running, "its pod is ready"));
        let o = aggregate(2, &named(vec![running(true), running(false)]), false, false, true);
        assert_eq!((o.phase, o.reason, o.message.as_str()), (InstancePhase::Degraded, "NotReady", "not ready: p1"));
        assert_eq!(
            aggregate(2, &named(vec![running(true), running(false)]), false, false, false).phase,
            InstancePhase::Starting
        );
    }

    #[test]
    fn image_pull_failures_name_the_image() {
        for r in ["ErrImagePull", "ImagePullBackOff"] {
            let o = aggregate(2, &named(vec![running(true), waiting(r, 0)]), false, false, false);
            assert_eq!((o.phase, o.reason), (InstancePhase::Failed, "ImagePullFailed"));
            assert_eq!(o.message, "pod p1 cannot pull image registry.example/bad:1: boom");
        }
    }

    #[test]
    fn crash_loops_degrade_instead_of_looping() {
        let o = aggregate(1, &named(vec![waiting("CrashLoopBackOff", 3)]), false, false, true);
        assert_eq!(
            (o.phase, o.reason, o.message.as_str()),
            (InstancePhase::Degraded, "CrashLoop", "pod p0 keeps crashing (3 restarts)")
        );
        assert_eq!(
            aggregate(1, &named(vec![waiting("Error", CRASH_RESTARTS)]), false, false, true).reason,
            "CrashLoop"
        );
    }

    #[test]
    fn failed_pods_fail_the_instance() {
        let p = pod(
            json!({"spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline"}}),
        );
        let o = aggregate(1, &named(vec![p]), false, false, true);
        assert_eq!((o.phase, o.reason), (InstancePhase::Failed, "PodFailed"));
        assert_eq!(o.message, "pod p0 failed: Pod was active on the node longer than the specified deadline");
    }
}
