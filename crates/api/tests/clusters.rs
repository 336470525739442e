//! Clusters as a service end to end: the API → the cluster reconciler →
//! Cluster API objects → (on kubesim) its simulated Cluster API, whose
//! workload clusters are other kubesims. A real cluster needs Cluster API
//! and an infrastructure provider for these, which no test here assumes:
//! they run on kubesim only.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kubesim::testing::wait_until;
use serde_json::{Value, json};
use std::time::Duration;

const SLOW: Duration = Duration::from_secs(60);

fn capi(env: &Env, tenant: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap();
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    Api::namespaced_with(env.tc.client.clone(), &env.state.namespace(tenant), &ar)
}

async fn profile(env: &Env) {
    let mut p = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "ClusterProfile", "metadata": {"name": "default"},
        "spec": {"infrastructure": {
            "cluster": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimCluster"},
            "machine": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimMachineTemplate"}},
            "versions": ["v1.29.0", "v1.30.0", "v1.31.0"], "maxWorkers": 4, "nodeUnhealthyTimeout": "1s"}});
    p["metadata"]["name"] = json!("default");
    let api: Api<resources::cluster::ClusterProfile> = Api::all(env.tc.client.clone());
    api.patch("default", &PatchParams::apply("test").force(), &Patch::Apply(&p)).await.unwrap();
}

async fn view(env: &Env, tenant: &str, token: &str, name: &str) -> Value {
    let (code, v) = env.call("GET", &format!("/v1/tenants/{tenant}/clusters/{name}"), Some(token), None).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v
}

async fn wait_phase(env: &Env, tenant: &str, name: &str, phase: &str) -> Value {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + SLOW;
    while tokio::time::Instant::now() < deadline {
        last = view(env, tenant, ADMIN, name).await;
        if last["phase"] == phase {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster {name} is not {phase} after {SLOW:?}: {last}");
}

/// The cluster's view once `done` says so (at most [`SLOW`]).
async fn until_view(env: &Env, tenant: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + SLOW;
    loop {
        let v = view(env, tenant, token, "demo").await;
        if done(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not there after {SLOW:?}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The phases seen until `phase`, each once, in order.
async fn phases_until(env: &Env, tenant: &str, name: &str, phase: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + SLOW;
    while tokio::time::Instant::now() < deadline {
        let v = view(env, tenant, ADMIN, name).await;
        let p = v["phase"].as_str().unwrap_or("").to_string();
        if seen.last() != Some(&p) {
            seen.push(p.clone());
        }
        if p == phase {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cluster {name} is not {phase} after {SLOW:?}; seen {seen:?}");
}

async fn workload(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn ready_nodes(client: &kube::Client) -> usize {
    let nodes = Api::<Node>::all(client.clone()).list(&Default::default()).await.unwrap();
    nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

fn start_env() -> impl std::future::Future<Output = Env> {
    Env::start_with(|s| {
        s.clusters.audit = Duration::from_millis(500);
        s.clusters.repair_backoff = Duration::from_millis(500);
        s.clusters.repair_cap = Duration::from_secs(2);
        s.clusters.rollout_grace = Duration::ZERO;
        s.clusters.repair_limit = 3;
    })
}

#[tokio::test]
async fn a_tenant_gets_a_cluster_whose_kubeconfig_works_and_is_stored_sealed() {
    let env = start_env().await;
    if env.tc.sim("Cluster API is played by kubesim").is_none() {
        return env.finish().await;
    }
    profile(&env).await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let base = format!("/v1/tenants/{a}/clusters");
    // Bad input is refused, naming the field.
    for (body, field) in [
        (json!({"name": "Bad_Name"}), "name"),
        (json!({"name": "x", "workers": 9}), "workers"),
        (json!({"name": "x", "version": "v1.99.0"}), "version"),
        (json!({"name": "x", "controlPlane": 2}), "controlPlane"),
        (json!({"name": "x", "profile": "nope"}), "profile"),
    ] {
        let (code, v) = env.call("POST", &base, Some(&tok), Some(body.clone())).await;
        assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{body}: {v}");
    }
    let started = std::time::Instant::now();
    let (code, v) = env.call("POST", &base, Some(&tok), Some(json!({"name": "demo", "workers": 2}))).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    // The quota (default 1 cluster) refuses a second.
    let (code, v) = env.call("POST", &base, Some(&tok), Some(json!({"name": "second"}))).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with("/cluster-quota"), "{v}");
    let seen = phases_until(&env, &a, "demo", "Running").await;
    eprintln!("create → Running in {:.2} s; phases {seen:?}", started.elapsed().as_secs_f64());
    assert!(seen.contains(&"Provisioning".to_string()), "{seen:?}");
    let v = view(&env, &a, &tok, "demo").await;
    assert_eq!((v["health"]["readyNodes"].as_u64(), v["health"]["desiredNodes"].as_u64()), (Some(3), Some(3)), "{v}");
    assert!(v["sshPublicKey"].as_str().unwrap().starts_with("ssh-ed25519 "));
    // The kubeconfig answers, and lists the cluster's 3 nodes.
    let (code, kc) = env.call_text("GET", &format!("{base}/demo/kubeconfig"), &tok).await;
    assert_eq!(code, StatusCode::OK, "{kc}");
    let wl = workload(&kc).await;
    assert_eq!(ready_nodes(&wl).await, 3);
    // Paddock's copy is sealed: no certificate, token or server in its bytes.
    let token = kc.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_string();
    let secret =
        Api::<Secret>::namespaced(env.tc.client.clone(), &env.state.namespace(&a)).get("demo-paddock").await.unwrap();
    let raw = serde_json::to_string(&secret).unwrap();
    let bytes: Vec<u8> = secret.data.unwrap().values().flat_map(|b| b.0.clone()).collect();
    let text = String::from_utf8_lossy(&bytes);
    for needle in ["BEGIN CERTIFICATE", token.as_str(), "127.0.0.1", "OPENSSH PRIVATE KEY"] {
        assert!(!text.contains(needle) && !raw.contains(needle), "the Secret holds {needle:?} in the clear");
    }
    // The SSH key is in the machines' bootstrap data, and handed out once.
    let public = v["sshPublicKey"].as_str().unwrap().to_string();
    let (code, key) = env.call_text("POST", &format!("{base}/demo/ssh-key"), &tok).await;
    assert_eq!(code, StatusCode::OK, "{key}");
    assert!(key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let (code, again) = env.call_text("POST", &format!("{base}/demo/ssh-key"), &tok).await;
    assert_eq!(code, StatusCode::GONE, "{again}");
    assert_eq!(view(&env, &a, &tok, "demo").await["sshKeyRetrieved"], true, "the view says the key was taken");
    let machines = capi(&env, &a, "cluster.x-k8s.io/v1beta1", "Machine").list(&Default::default()).await.unwrap();
    let boot = Api::<Secret>::namespaced(env.tc.client.clone(), &env.state.namespace(&a))
        .get(machines.items[0].metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    let cloud_init = String::from_utf8_lossy(&boot.data.unwrap()["value"].0).into_owned();
    assert!(cloud_init.contains(&public), "{cloud_init}");
    // Another tenant sees none of it.
    for (method, path) in [
        ("GET", format!("{base}/demo")),
        ("GET", format!("{base}/demo/kubeconfig")),
        ("POST", format!("{base}/demo/ssh-key")),
        ("DELETE", format!("{base}/demo")),
    ] {
        let (code, v) = env.call(method, &path, Some(&env.beta_token), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    // Scale up: a third worker joins.
    let (code, v) = env.call("PATCH", &format!("{base}/demo"), Some(&tok), Some(json!({"workers": 3}))).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) = env.call("PATCH", &format!("{base}/demo"), Some(&tok), Some(json!({"workers": 40}))).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("workers")), "{v}");
    // A scale is no fault: the new machine counts as being provisioned, never Degraded.
    let phases = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let scaled = until_view(&env, &a, &tok, |v| {
        phases.lock().unwrap().insert(v["phase"].as_str().unwrap_or("").to_string());
        v["health"]["readyNodes"] == 4
    })
    .await;
    assert_eq!(scaled["phase"], "Running", "{scaled}");
    let phases = phases.into_inner().unwrap();
    assert!(!phases.contains("Degraded") && !phases.contains("Repairing"), "{phases:?}");
    assert_eq!(ready_nodes(&wl).await, 4, "a fourth Ready node in the cluster itself");
    // Upgrades through the API: one minor version at a time, never down,
    // refused before anything is written (422 naming `version`).
    let path = format!("{base}/demo");
    for (body, needle) in [
        (json!({"version": "v1.31.0"}), "one minor version at a time"),
        (json!({"version": "v1.28.0"}), "not downgraded"),
        (json!({"version": "v1.29"}), "not a version"),
        (json!({}), "changes nothing"),
    ] {
        let (code, v) = env.call("PATCH", &path, Some(&tok), Some(body.clone())).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    // The same skip made with kubectl meets Cluster API's webhook: said on
    // the cluster (`applied` false, the server's words), which keeps running.
    let clusters: Api<resources::cluster::Cluster> = Api::namespaced(env.tc.client.clone(), &env.state.namespace(&a));
    let to = json!({"spec": {"version": "v1.31.0"}});
    clusters.patch("demo", &PatchParams::default(), &Patch::Merge(&to)).await.unwrap();
    let refused = until_view(&env, &a, &tok, |v| !v["applied"].as_bool().unwrap_or(true)).await;
    let words = "cannot update Kubernetes version from v1.29.0 to v1.31.0";
    assert!(refused["message"].as_str().unwrap().contains(words), "{refused}");
    assert_eq!(refused["phase"], "Running", "{refused}");
    // The next minor, through the API, goes through.
    let (code, v) = env.call("PATCH", &path, Some(&tok), Some(json!({"version": "v1.30.0"}))).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let upgraded = until_view(&env, &a, &tok, |v| v["version"] == "v1.30.0" && v["applied"] == true).await;
    assert_eq!(upgraded["phase"], "Running", "{upgraded}");
    let c = clusters.get("demo").await.unwrap();
    let applied = c.status.unwrap().conditions.into_iter().find(|x| x.type_ == "Applied").unwrap();
    assert_eq!((applied.status.as_str(), applied.reason.as_str()), ("True", "Applied"));
    // Delete: the Cluster API objects go, then the cluster.
    let (code, v) = env.call("DELETE", &format!("{base}/demo"), Some(&tok), None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    wait_until(SLOW, "the cluster is gone", || {
        let env = &env;
        let a = a.clone();
        async move {
            env.call("GET", &format!("/v1/tenants/{a}/clusters/demo"), Some(ADMIN), None).await.0
                == StatusCode::NOT_FOUND
        }
    })
    .await;
    for (v, k) in [
        ("cluster.x-k8s.io/v1beta1", "Cluster"),
        ("cluster.x-k8s.io/v1beta1", "Machine"),
        ("cluster.x-k8s.io/v1beta1", "MachineDeployment"),
        ("controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane"),
    ] {
        let left = capi(&env, &a, v, k).list(&Default::default()).await.unwrap();
        assert!(
            left.items.is_empty(),
            "{k}s left: {:?}",
            left.items.iter().map(|o| o.metadata.name.clone()).collect::<Vec<_>>()
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn faults_are_repaired_and_a_repair_that_cannot_help_gives_up() {
    let env = start_env().await;
    if env.tc.sim("Cluster API and its faults are played by kubesim").is_none() {
        return env.finish().await;
    }
    profile(&env).await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let (code, v) = env
        .call("POST", &format!("/v1/tenants/{a}/clusters"), Some(&tok), Some(json!({"name": "f", "workers": 1})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    wait_phase(&env, &a, "f", "Running").await;
    let clusters = capi(&env, &a, "cluster.x-k8s.io/v1beta1", "Cluster");
    let pp = PatchParams::default();
    // The API server goes down: re-applied, then a rollout brings it back.
    let down = json!({"metadata": {"annotations": {"kubesim.paddock.dev/api-server": "Down"}}});
    clusters.patch("f", &pp, &Patch::Merge(&down)).await.unwrap();
    let seen = phases_until(&env, &a, "f", "Repairing").await;
    assert!(seen.contains(&"Degraded".to_string()), "{seen:?}");
    let seen = phases_until(&env, &a, "f", "Running").await;
    eprintln!("API server down → {seen:?}");
    let kcp = capi(&env, &a, "controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane")
        .get("f-control-plane")
        .await
        .unwrap();
    assert!(kcp.data["spec"]["rolloutAfter"].is_string(), "a rollout was asked for");
    // A node goes NotReady: the health check replaces its machine.
    let machines = capi(&env, &a, "cluster.x-k8s.io/v1beta1", "Machine");
    let lp = kube::api::ListParams::default().labels("cluster.x-k8s.io/deployment-name=f-md-0");
    let worker = machines.list(&lp).await.unwrap().items[0].metadata.name.clone().unwrap();
    let sick = json!({"metadata": {"annotations": {"kubesim.paddock.dev/node-ready": "False"}}});
    machines.patch(&worker, &pp, &Patch::Merge(&sick)).await.unwrap();
    phases_until(&env, &a, "f", "Degraded").await;
    wait_until(SLOW, "the NotReady machine replaced", || {
        let (machines, worker) = (machines.clone(), worker.clone());
        async move { machines.get_opt(&worker).await.unwrap().is_none() }
    })
    .await;
    phases_until(&env, &a, "f", "Running").await;
    // Drift: a deleted MachineDeployment is applied again.
    capi(&env, &a, "cluster.x-k8s.io/v1beta1", "MachineDeployment")
        .delete("f-md-0", &Default::default())
        .await
        .unwrap();
    wait_until(SLOW, "the MachineDeployment is back", || {
        let mds = capi(&env, &a, "cluster.x-k8s.io/v1beta1", "MachineDeployment");
        async move { mds.get_opt("f-md-0").await.unwrap().is_some_and(|m| m.metadata.deletion_timestamp.is_none()) }
    })
    .await;
    wait_phase(&env, &a, "f", "Running").await;
    // A fault no repair reaches (nodes NotReady again and again) → Failed.
    let profile_api: Api<resources::cluster::ClusterProfile> = Api::all(env.tc.client.clone());
    let slow = json!({"spec": {"nodeUnhealthyTimeout": "1h"}});
    profile_api.patch("default", &pp, &Patch::Merge(&slow)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let worker = machines.list(&lp).await.unwrap().items[0].metadata.name.clone().unwrap();
    machines.patch(&worker, &pp, &Patch::Merge(&sick)).await.unwrap();
    let v = wait_phase(&env, &a, "f", "Failed").await;
    assert!(v["message"].as_str().unwrap_or("").contains("Ready"), "{v}");
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.tc.client.clone(), &env.state.namespace(&a));
    let reasons: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.iter().filter_map(|e| e.reason.clone()).collect();
    for r in ["Provisioned", "Degraded", "Repairing", "Repaired", "DriftRepaired", "RepairsExhausted"] {
        assert!(reasons.iter().any(|x| x == r), "no {r} Event among {reasons:?}");
    }
    env.finish().await;
}
