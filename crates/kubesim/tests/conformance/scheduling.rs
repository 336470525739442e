//! The scheduler and kubelets: node selection by taints, affinity and resources;
//! upstream's unschedulable message; pod start-up; image pull failures; graceful
//! deletion; NoExecute eviction; which container a log request names.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_gone};
use kubesim::{SimConfig, config};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn sim_nodes() -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.nodes = config::parse_nodes(
        "task-1,cpu=2,memory=4Gi,label=role=task,taint=role=task:NoSchedule;\
         vpn-1,cpu=2,memory=4Gi,label=role=vpn,taint=role=vpn:NoSchedule;\
         small-1,cpu=500m,memory=1Gi,label=size=small",
    )
    .expect("valid node spec");
    cfg
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn node_of(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default()
}

fn scheduled_or_refused(p: &Pod) -> bool {
    p.spec.as_ref().is_some_and(|s| s.node_name.is_some())
        || p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"))
}

fn running_ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions.as_ref().is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

#[tokio::test]
async fn taints_affinity_and_resources_decide_placement() {
    let mut tc = TestCluster::with_config(sim_nodes()).await;
    let Some(_) = tc.sim("needs kubesim's node list") else {
        return;
    };
    let ns = tc.namespace("sched").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let pp = PostParams::default();

    pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    let p = wait_for(&pods, "plain", T, scheduled_or_refused).await;
    assert_eq!(node_of(&p), "small-1", "untainted node is the only one without a toleration");

    pods.create(&pp, &pod("task", json!({"tolerations": [{"key": "role", "operator": "Equal", "value": "task", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "role", "operator": "In", "values": ["task"]}]}]}}}}))).await.unwrap();
    assert_eq!(node_of(&wait_for(&pods, "task", T, scheduled_or_refused).await), "task-1");

    pods.create(
        &pp,
        &pod("vpn", json!({"nodeSelector": {"role": "vpn"}, "tolerations": [{"key": "role", "operator": "Exists"}]})),
    )
    .await
    .unwrap();
    assert_eq!(node_of(&wait_for(&pods, "vpn", T, scheduled_or_refused).await), "vpn-1");

    pods.create(&pp, &pod("pinned", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["small-1"]}]}]}}}}))).await.unwrap();
    assert_eq!(node_of(&wait_for(&pods, "pinned", T, scheduled_or_refused).await), "small-1");

    // Too big for the only untainted node: upstream's message, counts sorted.
    let big = json!({"containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]});
    pods.create(&pp, &pod("big", big)).await.unwrap();
    let p = wait_for(&pods, "big", T, scheduled_or_refused).await;
    let cond = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        cond.message.as_deref(),
        Some(
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {role: task}, 1 node(s) had untolerated taint {role: vpn}. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
        )
    );
    // Freeing capacity lets it schedule... only if it fits; shrink it by deleting and recreating smaller.
    pods.delete("big", &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, "big", T).await;
    tc.finish().await;
}

#[tokio::test]
async fn pods_start_with_ips_and_pull_times_depend_on_the_node_cache() {
    let mut cfg = sim_nodes();
    cfg.images.default_pull = Duration::from_millis(300);
    cfg.images.cached_pull = Duration::from_millis(1);
    let mut tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("needs kubesim's simulated image pulls") else {
        return;
    };
    let ns = tc.namespace("kubelet").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("first", json!({}))).await.unwrap();
    let p = wait_for(&pods, "first", T, running_ready).await;
    let st = p.status.unwrap();
    assert!(st.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.244.")));
    assert!(st.host_ip.is_some());
    let cs = &st.container_statuses.unwrap()[0];
    assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(cs.image, "docker.io/library/busybox:1.36");

    // The same image on the same node again starts from the cache.
    let t0 = std::time::Instant::now();
    pods.create(&PostParams::default(), &pod("second", json!({}))).await.unwrap();
    wait_for(&pods, "second", T, running_ready).await;
    let cached = t0.elapsed();
    // (Figures, not assertions on wall time: print for the curious.)
    eprintln!("cached start took {cached:?}");
    tc.finish().await;
}

#[tokio::test]
async fn bad_images_back_off_and_graceful_deletion() {
    let mut tc = TestCluster::with_config(sim_nodes()).await;
    let Some(_) = tc.sim("bad-image pattern is a kubesim knob") else {
        return;
    };
    let ns = tc.namespace("pull").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let spec = json!({"containers": [{"name": "c", "image": "registry.example/doesnotexist:1"}]});
    pods.create(&PostParams::default(), &pod("bad", spec)).await.unwrap();
    let reason = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    wait_for(&pods, "bad", T, |p| reason(p).as_deref() == Some("ErrImagePull")).await;
    let p = wait_for(&pods, "bad", T, |p| reason(p).as_deref() == Some("ImagePullBackOff")).await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    // Its log: the kubelet refuses a container that has not started.
    let e = super::status(pods.logs("bad", &LogParams::default()).await);
    assert_eq!(e.code, 400);
    assert_eq!(e.message, "container \"c\" in pod \"bad\" is waiting to start: ImagePullBackOff");

    // Logs: which container, as the API server checks it.
    let two = json!({"initContainers": [{"name": "setup", "image": "busybox:1.36"}],
        "containers": [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "busybox:1.36"}]});
    pods.create(&PostParams::default(), &pod("two", two)).await.unwrap();
    wait_for(&pods, "two", T, running_ready).await;
    let e = super::status(pods.logs("two", &LogParams::default()).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "a container name must be specified for pod two, choose one of: [a b] or one of the init containers: [setup]"
        )
    );
    let e = super::status(pods.logs("two", &LogParams { container: Some("c".into()), ..Default::default() }).await);
    assert_eq!((e.code, e.message.as_str()), (400, "container c is not valid for pod two"));
    let log = pods.logs("two", &LogParams { container: Some("b".into()), ..Default::default() }).await.unwrap();
    assert_eq!(log, "", "containers do not run in kubesim");
    let e = super::status(
        pods.logs("two", &LogParams { container: Some("b".into()), previous: true, ..Default::default() }).await,
    );
    assert_eq!((e.code, e.message.as_str()), (400, "previous terminated container \"b\" in pod \"two\" not found"));

    pods.create(&PostParams::default(), &pod("graceful", json!({"terminationGracePeriodSeconds": 5}))).await.unwrap();
    wait_for(&pods, "graceful", T, running_ready).await;
    pods.delete("graceful", &DeleteParams::default()).await.unwrap();
    let p = pods.get_opt("graceful").await.unwrap();
    if let Some(p) = p {
        assert!(p.metadata.deletion_timestamp.is_some());
        assert_eq!(p.metadata.deletion_grace_period_seconds, Some(5));
    }
    wait_gone(&pods, "graceful", T).await;
    tc.finish().await;
}

#[tokio::test]
async fn no_execute_taints_evict() {
    let mut tc = TestCluster::with_config(sim_nodes()).await;
    let Some(_) = tc.sim("taints a kubesim node") else {
        return;
    };
    let ns = tc.namespace("evict").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("victim", json!({"nodeSelector": {"size": "small"}}))).await.unwrap();
    pods.create(&PostParams::default(), &pod("tolerant", json!({"nodeSelector": {"size": "small"}, "tolerations": [{"key": "drain", "operator": "Exists", "effect": "NoExecute"}]}))).await.unwrap();
    wait_for(&pods, "victim", T, running_ready).await;
    wait_for(&pods, "tolerant", T, running_ready).await;
    let nodes: Api<Node> = Api::all(tc.client.clone());
    nodes
        .patch(
            "small-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [{"key": "drain", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    wait_gone(&pods, "victim", T).await;
    assert!(pods.get("tolerant").await.unwrap().metadata.deletion_timestamp.is_none());
    tc.finish().await;
}

/// What an update may do to a running pod's deadline and tolerations.
#[tokio::test]
async fn pod_updates_only_lower_the_deadline_and_only_add_tolerations() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("podupd").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let tol = json!({"key": "drain", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60});
    pods.create(&PostParams::default(), &pod("p", json!({"tolerations": [tol]}))).await.unwrap();
    let patch = |v: Value| {
        let pods = pods.clone();
        async move { pods.patch("p", &PatchParams::default(), &Patch::Merge(json!({"spec": v}))).await }
    };
    let refused = |r: Result<Pod, kube::Error>, want: &str| {
        let e = super::status(r);
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(e.message.contains(want), "wanted {want:?} in: {}", e.message);
    };
    // Set once, then lowered; never raised or removed.
    patch(json!({"activeDeadlineSeconds": 600})).await.unwrap();
    patch(json!({"activeDeadlineSeconds": 300})).await.unwrap();
    refused(
        patch(json!({"activeDeadlineSeconds": 900})).await,
        "spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value",
    );
    refused(
        patch(json!({"activeDeadlineSeconds": null})).await,
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value",
    );
    // Tolerations: a new one may join, an existing one may change only its seconds.
    let added = json!({"key": "maintenance", "operator": "Exists", "effect": "NoSchedule"});
    patch(json!({"tolerations": [tol, added]})).await.unwrap();
    let mut longer = tol.clone();
    longer["tolerationSeconds"] = json!(120);
    patch(json!({"tolerations": [longer, added]})).await.unwrap();
    refused(
        patch(json!({"tolerations": [added]})).await,
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
    );
    let mut changed = added.clone();
    changed["effect"] = json!("NoExecute");
    refused(
        patch(json!({"tolerations": [longer, changed]})).await,
        "existing toleration can not be modified except its tolerationSeconds",
    );
    let p = pods.get("p").await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(300));
    // (DefaultTolerationSeconds admission adds not-ready and unreachable ones, on updates too.)
    let tols = serde_json::to_value(spec.tolerations.unwrap()).unwrap();
    let by_key = |k: &str| tols.as_array().unwrap().iter().find(|t| t["key"] == k).cloned();
    assert_eq!(by_key("drain").unwrap()["tolerationSeconds"], 120);
    assert!(by_key("maintenance").is_some(), "{tols}");
    tc.finish().await;
}
