//! Patches of every kind, server-side apply with field ownership, the status
//! subresource and generation.

use super::{configmap, status};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::conditions;
use kubesim::testing::TestCluster;
use serde_json::json;
use std::time::Duration;

pub async fn widget_crd(client: &kube::Client) -> ApiResource {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.test.paddock.dev"},
        "spec": {
            "group": "test.paddock.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }]
        }
    }))
    .unwrap();
    let pp = PatchParams::apply("conformance").force();
    crds.patch("widgets.test.paddock.dev", &pp, &Patch::Apply(&crd)).await.expect("apply CRD");
    let est = kube::runtime::wait::await_condition(crds, "widgets.test.paddock.dev", conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), est).await.expect("CRD established in time").expect("watch");
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("test.paddock.dev", "v1", "Widget"), "widgets")
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("patch").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    configmap(&api, "p", json!({"a": "1", "b": "2"})).await;
    let pp = PatchParams::default();
    let c = api.patch("p", &pp, &Patch::Merge(json!({"data": {"a": null, "c": "3"}}))).await.unwrap();
    assert_eq!(
        c.data.unwrap().into_iter().collect::<Vec<_>>(),
        vec![("b".to_string(), "2".to_string()), ("c".to_string(), "3".to_string())]
    );
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/b", "value": "9"}])).unwrap();
    let c = api.patch("p", &pp, &Patch::<()>::Json(ops)).await.unwrap();
    assert_eq!(c.data.unwrap()["b"], "9");
    // Upstream's JSON patch treats a missing field as null for `test` (kube's finalizer helper relies on it).
    let fin: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["paddock.dev/x"]}]))
    .unwrap();
    let c = api.patch("p", &pp, &Patch::<()>::Json(fin)).await.unwrap();
    assert_eq!(c.metadata.finalizers.unwrap(), ["paddock.dev/x"]);
    let clear: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}])).unwrap();
    api.patch("p", &pp, &Patch::<()>::Json(clear)).await.unwrap();
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/b", "value": "0"}])).unwrap();
    let e = status(api.patch("p", &pp, &Patch::<()>::Json(bad)).await);
    assert_eq!(e.code, 422, "{}", e.message);

    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "sp"}, "spec": {"containers": [
        {"name": "a", "image": "busybox:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "busybox:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let patched = pods
        .patch("sp", &pp, &Patch::Strategic(json!({"spec": {"containers": [{"name": "a", "image": "busybox:2"}]}})))
        .await
        .unwrap();
    let cs = patched.spec.unwrap().containers;
    assert_eq!(cs.len(), 2, "strategic merge keeps the other container");
    assert_eq!(cs[0].image.as_deref(), Some("busybox:2"));
    assert_eq!(cs[0].env.as_ref().map(|e| e.len()), Some(1));
    // Pod specs are immutable beyond images and a few fields.
    let e = status(pods.patch("sp", &pp, &Patch::Strategic(json!({"spec": {"restartPolicy": "Never"}}))).await);
    assert_eq!(e.code, 422);
    assert!(e.message.contains("pod updates may not change fields"), "{}", e.message);
    tc.finish().await;
}

#[tokio::test]
async fn server_side_apply_ownership_conflicts_and_force() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "labels": {"l": "1"}}, "data": {"a": "1", "b": "1"}});
    let c = api.patch("s", &PatchParams::apply("alpha"), &Patch::Apply(&first)).await.unwrap();
    let mf = c.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(|m| m.manager.as_deref() == Some("alpha") && m.operation.as_deref() == Some("Apply")));

    // Re-applying without b removes it (nobody else owns it).
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}});
    let c = api.patch("s", &PatchParams::apply("alpha"), &Patch::Apply(&second)).await.unwrap();
    assert_eq!(c.data.unwrap().len(), 1);
    assert!(c.metadata.labels.unwrap_or_default().is_empty());

    // Another manager changing alpha's field conflicts...
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "2"}});
    let e = status(api.patch("s", &PatchParams::apply("beta"), &Patch::Apply(&other)).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"alpha\": .data.a".replace(": .data.a", " using v1: .data.a")
    );
    // ...applying the same value shares ownership...
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}});
    api.patch("s", &PatchParams::apply("beta"), &Patch::Apply(&same)).await.unwrap();
    // ...and force takes it over.
    let c = api.patch("s", &PatchParams::apply("gamma").force(), &Patch::Apply(&other)).await.unwrap();
    assert_eq!(c.data.unwrap()["a"], "2");

    // A plain update takes ownership from appliers, so their next apply conflicts.
    api.patch(
        "s",
        &PatchParams { field_manager: Some("editor".into()), ..Default::default() },
        &Patch::Merge(json!({"data": {"a": "3"}})),
    )
    .await
    .unwrap();
    let e = status(api.patch("s", &PatchParams::apply("gamma"), &Patch::Apply(&other)).await);
    assert!(e.message.contains("conflict with \"editor\""), "{}", e.message);

    // Apply creates missing objects, and requires a field manager.
    let fresh = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"x": "y"}});
    api.patch("fresh", &PatchParams::apply("alpha"), &Patch::Apply(&fresh)).await.unwrap();
    assert!(api.get("fresh").await.is_ok());
    tc.finish().await;
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("status").await;
    let ar = widget_crd(&tc.client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(tc.client.clone(), &ns, &ar);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ignored": true}}))
    .unwrap();
    let w = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    assert!(w.data.get("status").is_none(), "status is dropped on create when it is a subresource");

    // Status writes change only status and do not bump generation.
    let s = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 99}})),
        )
        .await
        .unwrap();
    assert_eq!(s.data["status"]["ready"], true);
    assert_eq!(s.data["spec"]["size"], 1);
    assert_eq!(s.metadata.generation, Some(1));
    // Main-resource writes ignore status; spec changes bump generation, metadata changes do not.
    let m = api
        .patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": false}})))
        .await
        .unwrap();
    assert_eq!(m.data["status"]["ready"], true);
    assert_eq!(m.metadata.generation, Some(2));
    let m = api
        .patch("w", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(m.metadata.generation, Some(2));
    // Server-side apply to the status subresource.
    let st = json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Ready"}});
    let s = api.patch_status("w", &PatchParams::apply("ctrl"), &Patch::Apply(&st)).await.unwrap();
    assert_eq!(s.data["status"]["phase"], "Ready");
    tc.finish().await;
}

/// Server-side apply's refusals as upstream gives them: a field a custom
/// resource's schema does not declare fails building the typed patch (500,
/// no reason, whatever fieldValidation says: kubernetes/kubernetes#139253),
/// and an apply that creates an object with a resourceVersion is refused by
/// storage (500, "resourceVersion should not be set on objects to be created").
#[tokio::test]
async fn apply_refuses_undeclared_fields_and_a_create_with_a_resource_version() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("undeclared").await;
    let ar = widget_crd(&tc.client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(tc.client.clone(), &ns, &ar);
    let pp = PatchParams::apply("conformance");
    let junk = json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 1}, "junk": 1});
    let e = status(api.patch("w", &pp, &Patch::Apply(&junk)).await);
    assert_eq!((e.code, e.reason.as_str()), (500, ""));
    assert_eq!(
        e.message,
        format!(
            "failed to create typed patch object ({ns}/w; test.paddock.dev/v1, Kind=Widget): .junk: field not declared in schema"
        )
    );
    let with_rv = json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget",
        "metadata": {"name": "w", "resourceVersion": "5"}, "spec": {"size": 1}});
    let e = status(api.patch("w", &pp, &Patch::Apply(&with_rv)).await);
    assert_eq!((e.code, e.message.as_str()), (500, "resourceVersion should not be set on objects to be created"));
    // Declared fields only, no resourceVersion: created.
    let fine =
        json!({"apiVersion": "test.paddock.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}});
    api.patch("w", &pp, &Patch::Apply(&fine)).await.expect("a clean apply creates the widget");
    tc.finish().await;
}
