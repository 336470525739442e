//! `paddock bench --kubeconfig`: the benchmarks end to end on a cluster,
//! here the test's kubesim as an outside cluster (or a real one with
//! PADDOCK_TEST_KUBECONFIG): figures come back, API-server requests are read
//! from the API server's metrics, and nothing of the run is left.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use kubesim::testing::TestCluster;
use resources::{Template, Tenant};
use serde_json::Value;
use std::process::Command;

async fn bench(kubeconfig: &std::path::Path, args: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(["--log-level", "warn", "bench", "--json", "--kubeconfig"]).arg(kubeconfig).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("paddock runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "paddock bench {args:?} failed\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Nothing labelled by a bench run is left.
async fn nothing_left(client: &kube::Client) {
    let lp = ListParams::default().labels("paddock.dev/bench");
    // The run may have removed the CRDs it installed: then none is left either.
    let left = |r: Result<usize, kube::Error>| match r {
        Ok(n) => n,
        Err(kube::Error::Api(e)) if e.code == 404 => 0,
        Err(e) => panic!("listing what the bench left: {e}"),
    };
    let tenants = Api::<Tenant>::all(client.clone()).list_metadata(&lp).await.map(|l| l.items.len());
    assert_eq!(left(tenants), 0);
    let templates = Api::<Template>::all(client.clone()).list_metadata(&lp).await.map(|l| l.items.len());
    assert_eq!(left(templates), 0);
    // Namespaces may still be terminating on a real cluster; none is Active.
    let nss = Api::<Namespace>::all(client.clone()).list(&lp).await.unwrap().items;
    let active: Vec<_> = nss
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active"))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(active.is_empty(), "the bench left namespaces: {active:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_against_a_cluster_and_cleans_up() {
    let tc = TestCluster::start().await;
    let dir = std::env::temp_dir().join(format!("paddock-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = tc.kubeconfig_file(&dir);
    // What of Paddock's the cluster had: the runs remove what they installed, and only that.
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client.clone());
    let had_crd = crds.get_metadata_opt("tenants.paddock.dev").await.unwrap().is_some();
    let namespaces: Api<Namespace> = Api::all(tc.client.clone());
    let had_ns = namespaces.get_metadata_opt("paddock-system").await.unwrap().is_some();

    let v = bench(&kubeconfig, &["tenants", "--count", "4", "--kubectl-count", "0", "--raw-concurrency", "4"]).await;
    assert!(v["target"].as_str().unwrap().starts_with("cluster http"), "{v}");
    assert_eq!(v["paddock"]["tenants"], 4);
    assert_eq!(v["raw"]["tenants"], 4);
    // The raw loop writes each tenant's objects once (namespace, policies, quota, limits, RBAC).
    let raw_writes = v["raw"]["writes_per_tenant"].as_f64().expect("writes counted from /metrics");
    assert!(raw_writes >= 7.0, "{v}");
    assert!(v["paddock"]["writes_per_tenant"].as_f64().unwrap() >= raw_writes, "{v}");
    assert!(v["controller"]["cpu_seconds"].as_f64().is_some(), "{v}");
    assert!(v["controller"]["watch_restarts"].as_u64().is_some(), "read from the controller's /metrics: {v}");
    // Paddock's own requests per tenant, from the controller's paddock_kube_requests_total.
    assert!(v["requests_per_tenant"]["paddock_total"].as_f64().is_some_and(|n| n >= 7.0), "{v}");
    assert!(
        v["requests_per_tenant"]["paddock"]["APPLY namespaces"].as_f64().is_some()
            || v["requests_per_tenant"]["paddock"]["POST namespaces"].as_f64().is_some(),
        "{v}"
    );
    nothing_left(&tc.client).await;

    let v = bench(&kubeconfig, &["instances", "--count", "3", "--concurrency", "3"]).await;
    assert_eq!(v["count"], 3);
    assert_eq!(v["start"]["count"], 3, "{v}");
    assert!(v["writes_per_instance"].as_f64().unwrap() >= 1.0, "{v}");
    assert!(v["requests_per_instance"]["paddock"]["APPLY pods"].as_f64().is_some_and(|n| n >= 1.0), "{v}");
    assert!(v["controller"]["watch_restarts"].as_u64().is_some(), "{v}");
    nothing_left(&tc.client).await;

    // The in-process benchmarks: the platform in this process on the cluster.
    let v =
        bench(&kubeconfig, &["claims", "--rate", "20", "--count", "6", "--pool-size", "3", "--max-unready", "3"]).await;
    assert_eq!(v["warm"]["count"].as_u64().unwrap() + v["cold"]["count"].as_u64().unwrap(), 6, "{v}");
    assert!(v["max_pool_pods"].as_u64().unwrap() <= 6, "never more than size + maxUnready: {v}");
    assert!(v["pull_with_prepull"].is_null(), "the prepull comparison is kubesim's alone: {v}");
    assert!(v["cpu_seconds"].as_f64().is_some_and(|c| c > 0.0) && v["rss_mib"].as_f64().is_some(), "{v}");
    // What a start, a refilled pod and a cold start cost, and the raw floors of the same run.
    let warm = &v["requests_per_warm_claim"];
    assert!(warm["paddock_total"].as_f64().is_some_and(|n| n >= 3.0), "{v}");
    assert_eq!(warm["paddock"]["POST instances"].as_f64(), Some(1.0), "{v}");
    assert!(v["requests_per_refill_pod"]["paddock"]["POST pods"].as_f64().is_some(), "{v}");
    assert!(v["requests_per_cold_start"]["paddock"]["APPLY pods"].as_f64().is_some_and(|n| n >= 1.0), "{v}");
    assert_eq!(v["raw_floor"]["latency"]["count"], 6, "{v}");
    assert_eq!(v["raw_floor"]["with_refill"]["count"], 6, "{v}");
    assert!(v["raw_floor"]["paddock_p99_over_raw"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    nothing_left(&tc.client).await;
    if !had_crd {
        assert!(
            crds.get_metadata_opt("tenants.paddock.dev").await.unwrap().is_none(),
            "the runs remove the CRDs they installed"
        );
    }
    if !had_ns {
        let left = namespaces.get_opt("paddock-system").await.unwrap();
        let active = left.and_then(|n| n.status).and_then(|s| s.phase).is_some_and(|p| p == "Active");
        assert!(!active, "the runs remove the namespaces they installed");
    }
    let v = bench(
        &kubeconfig,
        &["api", "--concurrency", "3", "--sse-clients", "5", "--sse-events", "3", "--sse-interval-ms", "20"],
    )
    .await;
    assert_eq!(v["rounds"][0]["start"]["count"], 3, "{v}");
    assert_eq!(v["sse_delivery"]["count"], 15, "{v}");
    nothing_left(&tc.client).await;
    // The in-process benchmarks cannot measure an installed controller: one line, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["bench", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--installed-controller", "claims"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--installed-controller: only `bench tenants` and `bench instances`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}
