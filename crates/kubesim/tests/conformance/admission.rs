//! ResourceQuota and LimitRange admission, PVC binding and expansion, Service
//! IP and NodePort allocation, endpoints.

use super::status;
use k8s_openapi::api::core::v1::{Endpoints, LimitRange, PersistentVolumeClaim, Pod, ResourceQuota, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn obj<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn small_pod(name: &str) -> Pod {
    obj(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}}]}}))
}

#[tokio::test]
async fn quota_rejects_and_accounts() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(tc.client.clone(), &ns);
    quotas.create(&PostParams::default(), &obj(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"}}}))).await.unwrap();
    wait_for(&quotas, "q", T, |q| q.status.as_ref().and_then(|s| s.used.as_ref()).is_some()).await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    pods.create(&PostParams::default(), &small_pod("a")).await.unwrap();
    pods.create(&PostParams::default(), &small_pod("b")).await.unwrap();
    let e = status(pods.create(&PostParams::default(), &small_pod("c")).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let q = wait_for(&quotas, "q", T, |q| {
        q.status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .is_some_and(|u| u.get("pods").map(|x| x.0.as_str()) == Some("2"))
    })
    .await;
    let used = q.status.unwrap().used.unwrap();
    assert_eq!(used["requests.cpu"].0, "200m");
    assert_eq!(used["limits.memory"].0, "256Mi");

    // Pods without the constrained requests/limits are refused by name.
    let bare: Pod =
        obj(json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
    pods.delete("a", &Default::default()).await.unwrap();
    let e = status(pods.create(&PostParams::default(), &bare).await);
    assert_eq!(
        e.message,
        "pods \"bare\" is forbidden: failed quota: q: must specify limits.memory for: c; requests.cpu for: c"
    );
    tc.finish().await;
}

fn used(q: &ResourceQuota, r: &str) -> Option<String> {
    q.status.as_ref()?.used.as_ref()?.get(r).map(|x| x.0.clone())
}

/// Admission charges what is created; the quota controller gives usage back
/// when objects go (of any kind it counts) and follows changes of the quota's
/// spec, as upstream's replenishment and quota sync do.
#[tokio::test]
async fn quota_usage_is_given_back_when_objects_go_and_follows_spec_changes() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("quota-back").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(tc.client.clone(), &ns);
    let hard = json!({"pods": "2", "count/deployments.apps": "1", "count/configmaps": "5"});
    quotas
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "q"}, "spec": {"hard": hard}})))
        .await
        .unwrap();
    wait_for(&quotas, "q", T, |q| used(q, "pods").is_some()).await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    pods.create(&PostParams::default(), &small_pod("a")).await.unwrap();
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(tc.client.clone(), &ns);
    // Zero replicas: the Deployment is counted, no pod of it is.
    let d = obj(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
    );
    deps.create(&PostParams::default(), &d).await.unwrap();
    let q = wait_for(&quotas, "q", T, |q| used(q, "pods").as_deref() == Some("1")).await;
    assert_eq!(used(&q, "count/deployments.apps").as_deref(), Some("1"));

    // Each on its own, so that one kind's deletion does not recount the other's.
    deps.delete("web", &Default::default()).await.unwrap();
    wait_for(&quotas, "q", T, |q| used(q, "count/deployments.apps").as_deref() == Some("0")).await;
    pods.delete("a", &Default::default()).await.unwrap();
    wait_for(&quotas, "q", T, |q| used(q, "pods").as_deref() == Some("0")).await;

    // A new limit shows in the status (the quota's own status writes trigger nothing).
    quotas.patch("q", &PatchParams::default(), &Patch::Merge(json!({"spec": {"hard": {"pods": "3"}}}))).await.unwrap();
    wait_for(&quotas, "q", T, |q| {
        q.status.as_ref().and_then(|s| s.hard.as_ref()).and_then(|h| h.get("pods")).map(|x| x.0.as_str()) == Some("3")
    })
    .await;
    tc.finish().await;
}

/// Admission charges the quota at once; the quota controller's recount must
/// never undo a charge it has not seen yet, or concurrent creates get past
/// the limit (upstream's controller writes status with the resourceVersion
/// it read, so a charge in between makes its write conflict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_exceed_a_quota() {
    let mut tc = TestCluster::start().await;
    for round in 0..4 {
        let ns = tc.namespace(&format!("quota-race-{round}")).await;
        let quotas: Api<ResourceQuota> = Api::namespaced(tc.client.clone(), &ns);
        quotas
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "1"}}})),
            )
            .await
            .unwrap();
        wait_for(&quotas, "q", T, |q| q.status.as_ref().and_then(|s| s.used.as_ref()).is_some()).await;
        let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
        let creates = (0..40).map(|i| {
            let pods = pods.clone();
            tokio::spawn(async move { pods.create(&PostParams::default(), &small_pod(&format!("p{i}"))).await.is_ok() })
        });
        let mut admitted = 0;
        for c in futures::future::join_all(creates).await {
            admitted += usize::from(c.unwrap());
        }
        assert_eq!(admitted, 10, "round {round}: 10 pods of 100m fit in requests.cpu=1");
        let q = wait_for(&quotas, "q", T, |q| {
            q.status.as_ref().and_then(|s| s.used.as_ref()).is_some_and(|u| u["requests.cpu"].0 == "1")
        })
        .await;
        assert_eq!(q.status.unwrap().used.unwrap()["requests.cpu"].0, "1");
    }
    tc.finish().await;
}

#[tokio::test]
async fn limit_ranges_default_and_bound_containers() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("limits").await;
    let lrs: Api<LimitRange> = Api::namespaced(tc.client.clone(), &ns);
    lrs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"}, "max": {"cpu": "1"}}]}}))).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let p = pods
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "d"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})),
        )
        .await
        .unwrap();
    let r = p.spec.unwrap().containers[0].resources.clone().unwrap();
    assert_eq!(r.requests.unwrap()["cpu"].0, "100m");
    assert_eq!(r.limits.unwrap()["memory"].0, "256Mi");
    let e = status(pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "huge"}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]}}))).await);
    assert_eq!(e.code, 403);
    assert_eq!(e.message, "pods \"huge\" is forbidden: maximum cpu usage per Container is 1, but limit is 2");
    tc.finish().await;
}

#[tokio::test]
async fn claims_bind_expand_and_refuse_to_shrink() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("pvc").await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(tc.client.clone(), &ns);
    let class = if tc.is_sim() {
        "standard".to_string()
    } else {
        std::env::var("PADDOCK_TEST_STORAGE_CLASS").unwrap_or_else(|_| "standard".into())
    };
    pvcs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": {"requests": {"storage": "1Gi"}}}}))).await.unwrap();
    let bound = |p: &PersistentVolumeClaim| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let p = wait_for(&pvcs, "data", T, bound).await;
    assert!(p.spec.unwrap().volume_name.is_some());
    assert!(p.metadata.finalizers.unwrap_or_default().contains(&"kubernetes.io/pvc-protection".to_string()));

    pvcs.patch(
        "data",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
    )
    .await
    .unwrap();
    wait_for(&pvcs, "data", T, |p| {
        p.status.as_ref().and_then(|s| s.capacity.as_ref()).is_some_and(|c| c["storage"].0 == "2Gi")
    })
    .await;

    let e = status(
        pvcs.patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}})),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    );

    let Some(_) = tc.sim("creates a StorageClass without expansion") else {
        tc.finish().await;
        return;
    };
    let scs: Api<StorageClass> = Api::all(tc.client.clone());
    scs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "fixed"}, "provisioner": "kubesim.dev/hostpath", "allowVolumeExpansion": false}))).await.unwrap();
    pvcs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "fixed"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fixed", "resources": {"requests": {"storage": "1Gi"}}}}))).await.unwrap();
    wait_for(&pvcs, "fixed", T, bound).await;
    let e = status(
        pvcs.patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}})),
        )
        .await,
    );
    assert_eq!(e.code, 403);
    assert!(e.message.contains("storageclass that provisions the pvc must support resize"), "{}", e.message);
    tc.finish().await;
}

#[tokio::test]
async fn services_get_ips_node_ports_and_endpoints() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("svc").await;
    let svcs: Api<Service> = Api::namespaced(tc.client.clone(), &ns);
    let s = svcs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))).await.unwrap();
    assert!(s.spec.as_ref().and_then(|s| s.cluster_ip.clone()).is_some_and(|ip| ip != "None" && !ip.is_empty()));
    let np = svcs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}))).await.unwrap();
    let port = np.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&port));
    let e = status(svcs.create(&PostParams::default(), &obj(json!({"metadata": {"name": "clash"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}}))).await);
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        format!(
            "Service \"clash\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )
    );

    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 8080}]}]}}))).await.unwrap();
    let eps: Api<Endpoints> = Api::namespaced(tc.client.clone(), &ns);
    wait_until(T, "endpoints with the ready pod", || async {
        eps.get_opt("web").await.ok().flatten().and_then(|e| e.subsets).is_some_and(|s| {
            s.iter().any(|s| {
                s.addresses.as_ref().is_some_and(|a| !a.is_empty())
                    && s.ports.as_ref().is_some_and(|p| p[0].port == 8080)
            })
        })
    })
    .await;
    // Relabelled out of the selector: the address goes.
    let addresses = |e: Option<Endpoints>| {
        e.and_then(|e| e.subsets)
            .unwrap_or_default()
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, |a| a.len()))
            .sum::<usize>()
    };
    pods.patch("web-1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}})))
        .await
        .unwrap();
    wait_until(T, "the relabelled pod leaves the endpoints", || async {
        addresses(eps.get_opt("web").await.ok().flatten()) == 0
    })
    .await;
    // The Service's selector follows it: the address is back.
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"app": "api"}}})))
        .await
        .unwrap();
    wait_until(T, "the new selector picks the pod", || async {
        addresses(eps.get_opt("web").await.ok().flatten()) == 1
    })
    .await;
    // The Service goes: so do its Endpoints.
    svcs.delete("web", &Default::default()).await.unwrap();
    wait_until(T, "the endpoints go with the service", || async { eps.get_opt("web").await.ok().flatten().is_none() })
        .await;
    tc.finish().await;
}
