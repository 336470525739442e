//! kubesim's reachability endpoint: NetworkPolicies evaluated over live objects.

use super::raw;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PostParams};
use kubesim::testing::TestCluster;
use serde_json::json;

#[tokio::test]
async fn reachability_follows_the_policies() {
    let mut tc = TestCluster::start().await;
    let Some(_) = tc.sim("the reachability endpoint is kubesim's") else { return };
    let a = tc.namespace("reach-a").await;
    let b = tc.namespace("reach-b").await;
    for (ns, name, role) in [(&a, "web", "web"), (&a, "db", "db"), (&b, "other", "web")] {
        let pods: Api<Pod> = Api::namespaced(tc.client.clone(), ns);
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"role": role}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"name": "sql", "containerPort": 5432}]}]}})).unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let pols: Api<NetworkPolicy> = Api::namespaced(tc.client.clone(), &a);
    for spec in [
        json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        json!({"metadata": {"name": "web-to-db"}, "spec": {"podSelector": {"matchLabels": {"role": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "web"}}}], "ports": [{"port": "sql"}]}]}}),
        json!({"metadata": {"name": "web-out"}, "spec": {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "db"}}}]}]}}),
    ] {
        pols.create(&PostParams::default(), &serde_json::from_value(spec).unwrap()).await.unwrap();
    }
    let get = |q: String| {
        let client = tc.client.clone();
        async move { raw(&client, "GET", &format!("/sim/v1/reachability{q}"), "application/json", b"").await }
    };
    let (code, v) = get(format!("?from={a}/web&to={a}/db&port=5432&protocol=TCP")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["allowed"], true, "{v}");
    assert!(v["explanation"].as_str().unwrap().contains(&format!("{a}/web-to-db ingress rule 0")), "{v}");
    let (_, v) = get(format!("?from={a}/web&to={a}/db&port=22")).await;
    assert_eq!(v["allowed"], false, "{v}");
    let (_, v) = get(format!("?from={b}/other&to={a}/db&port=5432")).await;
    assert_eq!(v["allowed"], false, "{v}");
    let (_, v) = get(format!("?from=203.0.113.9&to={a}/web&port=80")).await;
    assert_eq!(v["allowed"], false, "{v}");
    let (_, v) = get(format!("/matrix?namespace={a}")).await;
    let paths = v["paths"].as_array().unwrap();
    assert_eq!(paths, &vec![json!([format!("{a}/web"), format!("{a}/db")])], "{v}");
    let (code, v) = get(format!("?from={a}/web&to={a}/nope&port=1")).await;
    assert_eq!(code, 404, "{v}");
    let (code, v) = get("?from=x&to=y".into()).await;
    assert_eq!(code, 400, "{v}");
    let (code, _) = get(format!("?from={a}/web&to={a}/db&port=99999")).await;
    assert_eq!(code, 400);
    tc.finish().await;
}
