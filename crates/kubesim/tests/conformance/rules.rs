//! CRD validation rules (`x-kubernetes-validations`, CEL): compiled when the
//! CRD is written, for the server's version, and evaluated on writes of its
//! objects, transition rules (`oldSelf`) on updates only.

use super::status;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::conditions;
use kubesim::testing::TestCluster;
use serde_json::{Value, json};
use std::time::Duration;

const SHRINK: &str = "quantity(self).compareTo(quantity(oldSelf)) >= 0";

fn crd(name: &str, group: &str, kind: &str, plural: &str, spec: Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}}}]
        }
    }))
    .unwrap()
}

/// (major, minor) of the server.
async fn server_version(client: &kube::Client) -> (u32, u32) {
    let info = client.apiserver_version().await.unwrap();
    let digits = |s: &str| s.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u32>().unwrap();
    (digits(&info.major), digits(&info.minor))
}

#[tokio::test]
async fn crd_rules_compile_for_the_servers_version() {
    let tc = TestCluster::start().await;
    let version = server_version(&tc.client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client.clone());
    let spec = json!({"type": "object", "properties": {"size": {"type": "string",
        "x-kubernetes-validations": [{"rule": SHRINK, "message": "may grow but not shrink"}]}}});
    let c = crd("quantities.rules.test.paddock.dev", "rules.test.paddock.dev", "Quantity", "quantities", spec);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let result = crds.create(&dry, &c).await;
    if version < (1, 29) {
        // The quantity library is in the environment new CRDs compile with from 1.29.
        let e = status(result);
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(e.message.contains("undeclared reference to 'quantity'"), "{}", e.message);
        assert!(e.message.contains("x-kubernetes-validations[0].rule"), "{}", e.message);
    } else {
        result.unwrap();
    }
    // A rule that does not parse is refused on every version.
    let spec = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.size >"}]});
    let c = crd("broken.rules.test.paddock.dev", "rules.test.paddock.dev", "Broken", "broken", spec);
    let e = status(crds.create(&dry, &c).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(e.message.contains("compilation failed"), "{}", e.message);
    tc.finish().await;
}

#[tokio::test]
async fn crd_rules_are_evaluated_on_writes() {
    let mut tc = TestCluster::start().await;
    let version = server_version(&tc.client).await;
    let ns = tc.namespace("rules").await;
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client.clone());
    let mut props = json!({
        "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10", "message": "at most 10 replicas"}]},
        "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]},
        "mode": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'off'", "reason": "FieldValueForbidden", "message": "mode may not be off"}]}
    });
    if version >= (1, 29) {
        props["size"] = json!({"type": "string", "x-kubernetes-validations": [{"rule": SHRINK, "message": "may grow but not shrink"}]});
    }
    let spec = json!({"type": "object", "properties": props,
        "x-kubernetes-validations": [{"rule": "!has(self.mode) || has(self.name)", "message": "a mode needs a name", "fieldPath": ".mode"}]});
    let name = "gadgets.rules.test.paddock.dev";
    let c = crd(name, "rules.test.paddock.dev", "Gadget", "gadgets", spec);
    crds.patch(name, &PatchParams::apply("conformance").force(), &Patch::Apply(&c)).await.expect("apply CRD");
    let est = kube::runtime::wait::await_condition(crds.clone(), name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), est).await.expect("CRD established in time").expect("watch");
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("rules.test.paddock.dev", "v1", "Gadget"), "gadgets");
    let api: Api<DynamicObject> = Api::namespaced_with(tc.client.clone(), &ns, &ar);
    let gadget = |spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "rules.test.paddock.dev/v1", "kind": "Gadget",
            "metadata": {"name": "g"}, "spec": spec}))
        .unwrap()
    };
    let pp = PostParams::default();

    let e = status(api.create(&pp, &gadget(json!({"replicas": 11}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert_eq!(
        e.message,
        "Gadget.rules.test.paddock.dev \"g\" is invalid: spec.replicas: Invalid value: \"integer\": at most 10 replicas"
    );
    let e = status(api.create(&pp, &gadget(json!({"mode": "on"}))).await);
    assert!(e.message.ends_with("spec.mode: Invalid value: \"object\": a mode needs a name"), "{}", e.message);
    let e = status(api.create(&pp, &gadget(json!({"name": "a", "mode": "off"}))).await);
    assert!(e.message.ends_with("spec.mode: Forbidden: mode may not be off"), "{}", e.message);

    // Transition rules: not on a create, on every update.
    let mut first = json!({"replicas": 3, "name": "a"});
    if version >= (1, 29) {
        first["size"] = json!("10Gi");
    }
    let created = api.create(&pp, &gadget(first.clone())).await.unwrap();
    let rv = created.metadata.resource_version.clone();
    let mut renamed = gadget(json!({"replicas": 3, "name": "b", "size": first.get("size")}));
    renamed.metadata.resource_version = rv.clone();
    let e = status(api.replace("g", &pp, &renamed).await);
    assert!(e.message.ends_with("spec.name: Invalid value: \"string\": name is immutable"), "{}", e.message);
    if version >= (1, 29) {
        let e = status(api.patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "5Gi"}}))).await);
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(e.message.ends_with("spec.size: Invalid value: \"string\": may grow but not shrink"), "{}", e.message);
        api.patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "20Gi"}}))).await.unwrap();
    }
    api.patch("g", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 10}}))).await.unwrap();
    tc.finish().await;
}
