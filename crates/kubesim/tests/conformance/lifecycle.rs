//! Finalizers, garbage collection (background, foreground, orphan) and
//! namespace termination.

use super::{configmap, status};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kubesim::testing::{TestCluster, wait_gone, wait_until};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn owned(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid, "blockOwnerDeletion": block}]}}))
    .unwrap()
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("fin").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["paddock.dev/test"]}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let e = status(
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["paddock.dev/test", "other.dev/x"]}})),
        )
        .await,
    );
    assert_eq!(e.code, 422, "no new finalizers while deleting: {}", e.message);
    api.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    wait_gone(&api, "f", T).await;
    tc.finish().await;
}

#[tokio::test]
async fn garbage_collection_background_foreground_orphan() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("gc").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);

    let owner = configmap(&api, "owner-bg", json!({})).await;
    api.create(&PostParams::default(), &owned("dep-bg", &owner, false)).await.unwrap();
    api.delete("owner-bg", &DeleteParams::background()).await.unwrap();
    wait_gone(&api, "dep-bg", T).await;

    let owner = configmap(&api, "owner-fg", json!({})).await;
    let dep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dep-fg", "finalizers": ["paddock.dev/hold"], "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner-fg", "uid": owner.metadata.uid, "blockOwnerDeletion": true}]}})).unwrap();
    api.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("owner-fg", &DeleteParams::foreground()).await.unwrap();
    // The owner waits for its blocking dependent.
    wait_until(T, "dependent being deleted", || async {
        api.get("dep-fg").await.map(|d| d.metadata.deletion_timestamp.is_some()).unwrap_or(false)
    })
    .await;
    let o = api.get("owner-fg").await.expect("owner still there while the dependent lives");
    assert!(o.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    api.patch("dep-fg", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    wait_gone(&api, "owner-fg", T).await;

    let owner = configmap(&api, "owner-or", json!({})).await;
    api.create(&PostParams::default(), &owned("dep-or", &owner, false)).await.unwrap();
    api.delete("owner-or", &DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() })
        .await
        .unwrap();
    wait_gone(&api, "owner-or", T).await;
    let dep = api.get("dep-or").await.expect("orphaned dependent survives");
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // A dependent whose owner never existed is collected.
    let ghost: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ghost", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "00000000-0000-0000-0000-000000000000"}]}}))
    .unwrap();
    api.create(&PostParams::default(), &ghost).await.unwrap();
    wait_gone(&api, "ghost", T).await;
    tc.finish().await;
}

/// A volume no claim is bound to goes when deleted: the pv-protection
/// finalizer holds only a Bound one (upstream's pv-protection controller).
#[tokio::test]
async fn an_unbound_volume_is_deleted_past_its_protection() {
    let tc = TestCluster::start().await;
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(tc.client.clone());
    let name = format!("unbound-{}", std::process::id());
    let pv = serde_json::from_value(json!({"metadata": {"name": name, "finalizers": ["kubernetes.io/pv-protection"]},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": "/tmp/unbound"}}}))
    .unwrap();
    pvs.create(&PostParams::default(), &pv).await.unwrap();
    pvs.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&pvs, &name, T).await;
    tc.finish().await;
}

#[tokio::test]
async fn namespace_termination() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("term").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    configmap(&api, "x", json!({})).await;
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["paddock.dev/hold"]}})).unwrap();
    api.create(&PostParams::default(), &held).await.unwrap();
    let nss: Api<Namespace> = Api::all(tc.client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    let n = nss.get(&ns).await.unwrap();
    assert_eq!(n.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    let e = status(
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap())
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        format!(
            "configmaps \"late\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
        )
    );
    wait_gone(&api, "x", T).await;
    // The namespace stays until the held object lets go.
    assert!(nss.get(&ns).await.is_ok());
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    wait_gone(&nss, &ns, T).await;

    // Creating in a namespace that does not exist is a 404 for the namespace.
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), "no-such-namespace");
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    let e = status(pods.create(&PostParams::default(), &p).await);
    assert_eq!((e.code, e.message.as_str()), (404, "namespaces \"no-such-namespace\" not found"));
    let e = status(nss.delete("kube-system", &DeleteParams::default()).await);
    assert_eq!(e.code, 403);
    tc.finish().await;
}

/// The kubelet refuses a pod that sets an unsafe sysctl its node does not
/// allow (upstream's default allows none): the pod fails before it starts,
/// with the kubelet's admission reason and message (`pkg/kubelet/sysctl`,
/// `rejectPod`). A safe sysctl is fine.
#[tokio::test]
async fn the_kubelet_refuses_a_sysctl_its_node_does_not_allow() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("sysctl").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let pod = |name: &str, sysctl: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
            "securityContext": {"sysctls": [{"name": sysctl, "value": "1"}]},
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("unsafe", "kernel.msgmax")).await.unwrap();
    pods.create(&PostParams::default(), &pod("safe", "net.ipv4.tcp_syncookies")).await.unwrap();
    wait_until(Duration::from_secs(60), "the unsafe pod to be refused", || async {
        let p = pods.get("unsafe").await.unwrap();
        p.status.is_some_and(|s| s.phase.as_deref() == Some("Failed"))
    })
    .await;
    let failed = pods.get("unsafe").await.unwrap().status.unwrap();
    assert_eq!(failed.reason.as_deref(), Some("SysctlForbidden"));
    assert_eq!(
        failed.message.as_deref(),
        Some(r#"Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted"#)
    );
    wait_until(Duration::from_secs(60), "the safe pod to run", || async {
        let p = pods.get("safe").await.unwrap();
        p.status.and_then(|s| s.phase).is_some_and(|ph| ph == "Running")
    })
    .await;
    tc.finish().await;
}
