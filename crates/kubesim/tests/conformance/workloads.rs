//! Custom resources, Deployments, DaemonSets and persistence across restarts.

use super::apply::widget_crd;
use super::status;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_gone, wait_until};
use kubesim::{KubeSim, SimConfig, config};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn custom_resources_are_served_and_cleaned_up_with_their_crd() {
    let mut tc = TestCluster::start().await;
    let Some(_) = tc.sim("deletes a CRD, which is cluster-wide") else {
        return;
    };
    let ns = tc.namespace("cr").await;
    let ar = widget_crd(&tc.client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(tc.client.clone(), &ns, &ar);
    let w: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let e = status(api.create(&PostParams::default(), &w).await);
    assert_eq!(e.message, "widgets.test.paddock.dev \"w1\" already exists");
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client.clone());
    crds.delete("widgets.test.paddock.dev", &DeleteParams::default()).await.unwrap();
    wait_gone(&crds, "widgets.test.paddock.dev", T).await;
    let e = status(api.list(&ListParams::default()).await);
    assert_eq!(e.code, 404);
    tc.finish().await;
}

#[tokio::test]
async fn deployments_and_daemonsets_produce_pods() {
    let mut cfg = SimConfig::default();
    cfg.nodes = config::parse_nodes("a;b;c,taint=dedicated=x:NoSchedule").unwrap();
    let mut tc = TestCluster::with_config(cfg).await;
    let ns = tc.namespace("apps").await;
    let deps: Api<Deployment> = Api::namespaced(tc.client.clone(), &ns);
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})).unwrap();
    deps.create(&PostParams::default(), &d).await.unwrap();
    wait_for(&deps, "web", T, |d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)).await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    assert_eq!(pods.list(&ListParams::default().labels("app=web")).await.unwrap().items.len(), 3);

    let bad: Deployment = serde_json::from_value(json!({"metadata": {"name": "bad"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).unwrap();
    let e = status(deps.create(&PostParams::default(), &bad).await);
    assert_eq!(e.code, 422);
    assert!(e.message.contains("`selector` does not match template `labels`"), "{}", e.message);

    let Some(_) = tc.sim("counts pods per kubesim node") else {
        tc.finish().await;
        return;
    };
    let dss: Api<DaemonSet> = Api::namespaced(tc.client.clone(), &ns);
    let ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})).unwrap();
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let ds = wait_for(&dss, "agent", T, |d| d.status.as_ref().is_some_and(|s| s.number_ready == 2)).await;
    assert_eq!(ds.status.unwrap().desired_number_scheduled, 2, "the tainted node is not eligible");
    tc.finish().await;
}

#[tokio::test]
async fn a_deployment_gets_its_pods_once_its_service_account_exists() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("late-sa").await;
    let deps: Api<Deployment> = Api::namespaced(tc.client.clone(), &ns);
    let d: Deployment = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"serviceAccountName": "late",
            "containers": [{"name": "c", "image": "nginx:1.27"}]}}}}),
    )
    .unwrap();
    deps.create(&PostParams::default(), &d).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    // The ReplicaSet exists, but service account admission refuses its pods.
    let sets: Api<ReplicaSet> = Api::namespaced(tc.client.clone(), &ns);
    wait_until(T, "the ReplicaSet", || async { !sets.list(&ListParams::default()).await.unwrap().items.is_empty() })
        .await;
    assert!(pods.list(&ListParams::default()).await.unwrap().items.is_empty(), "no pod without its service account");
    let sas: Api<ServiceAccount> = Api::namespaced(tc.client.clone(), &ns);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap())
        .await
        .unwrap();
    wait_for(&deps, "web", T, |d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(2)).await;
    tc.finish().await;
}

#[tokio::test]
async fn state_survives_a_clean_restart() {
    if kubesim::testing::real_cluster() {
        eprintln!("skipped on a real cluster: restarts kubesim");
        return;
    }
    let dir = std::env::temp_dir().join(format!("kubesim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let mut cfg = SimConfig::default();
    cfg.state_file = Some(file.clone());
    let sim = KubeSim::start(cfg.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "kept"}, "data": {"k": "v"}})).unwrap();
    let made = api.create(&PostParams::default(), &cm).await.unwrap();
    sim.shutdown().await.unwrap();

    let sim = KubeSim::start(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await.unwrap(), "default");
    let back = api.get("kept").await.unwrap();
    assert_eq!(back.metadata.uid, made.metadata.uid);
    assert_eq!(back.metadata.resource_version, made.metadata.resource_version);
    assert_eq!(back.data.unwrap()["k"], "v");
    // New writes continue the resourceVersion sequence.
    let cm2: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "after"}})).unwrap();
    let after = api.create(&PostParams::default(), &cm2).await.unwrap();
    let n = |s: Option<String>| s.unwrap().parse::<u64>().unwrap();
    assert!(n(after.metadata.resource_version) > n(made.metadata.resource_version));
    wait_until(T, "nothing", || async { true }).await;
    sim.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn custom_resources_are_defaulted_pruned_and_validated() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("schema").await;
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "gadgets.test.paddock.dev"},
        "spec": {"group": "test.paddock.dev", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                    "size": {"type": "integer", "minimum": 1, "default": 3}
                }}
            }}}}]}
    }))
    .unwrap();
    crds.patch(
        "gadgets.test.paddock.dev",
        &kube::api::PatchParams::apply("conformance").force(),
        &kube::api::Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let est = kube::runtime::wait::await_condition(
        crds.clone(),
        "gadgets.test.paddock.dev",
        kube::runtime::conditions::is_crd_established(),
    );
    tokio::time::timeout(T, est).await.unwrap().unwrap();
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("test.paddock.dev", "v1", "Gadget"),
        "gadgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(tc.client.clone(), &ns, &ar);
    let g: DynamicObject = serde_json::from_value(json!({"apiVersion": "test.paddock.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"name": "ok", "colour": "red"}})).unwrap();
    let made = api.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(made.data["spec"]["size"], 3, "schema default applied");
    assert!(made.data["spec"].get("colour").is_none(), "unknown field pruned");

    // An apply refuses an undeclared field whatever fieldValidation says: the
    // field manager cannot build its typed object (upstream's 500, before any
    // strict check; kubernetes/kubernetes#139253).
    let g2 = json!({"apiVersion": "test.paddock.dev/v1", "kind": "Gadget", "metadata": {"name": "g2"}, "spec": {"name": "ok", "colour": "red"}});
    let e = status(
        api.patch(
            "g2",
            &kube::api::PatchParams::apply("conformance").validation_strict(),
            &kube::api::Patch::Apply(&g2),
        )
        .await,
    );
    assert_eq!(e.code, 500);
    assert!(e.message.ends_with(".spec.colour: field not declared in schema"), "{}", e.message);
    // A merge patch with fieldValidation=Strict (what kubectl sends) gets the strict decoding error.
    let e = status(
        api.patch(
            "g",
            &kube::api::PatchParams {
                field_validation: Some(kube::api::ValidationDirective::Strict),
                ..Default::default()
            },
            &kube::api::Patch::Merge(json!({"spec": {"colour": "blue"}})),
        )
        .await,
    );
    assert_eq!(e.code, 400);
    assert!(e.message.contains("unknown field \"spec.colour\""), "{}", e.message);

    let bad: DynamicObject = serde_json::from_value(json!({"apiVersion": "test.paddock.dev/v1", "kind": "Gadget", "metadata": {"name": "bad"}, "spec": {"name": "NO", "size": 0}})).unwrap();
    let e = status(api.create(&PostParams::default(), &bad).await);
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec.name: Invalid value: \"NO\": spec.name in body should match '^[a-z]+$'"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{}",
        e.message
    );
    if tc.is_sim() {
        crds.delete("gadgets.test.paddock.dev", &DeleteParams::default()).await.unwrap();
    }
    tc.finish().await;
}
