//! The test harness itself: a test that fails on a cluster that outlives it
//! (a real one, here a simulator on a runtime of its own) still deletes the
//! namespaces it made, and the cluster-scoped objects and namespaces it
//! said were its own (`owns_labelled`, `owns_prefixed`), finalizers and all.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume};
use kube::Api;
use kube::api::PostParams;
use kube::discovery::ApiResource;
use kubesim::testing::TestCluster;
use kubesim::{KubeSim, SimConfig};
use std::sync::{Arc, Mutex};

/// Runs `f` on a runtime of its own, on a thread of its own.
fn on_own_runtime<T: Send + 'static>(f: impl FnOnce(tokio::runtime::Runtime) -> T + Send + 'static) -> T {
    std::thread::spawn(move || f(tokio::runtime::Runtime::new().unwrap())).join().unwrap()
}

#[test]
fn a_failed_test_still_deletes_its_namespaces() {
    // The "cluster": kubesim serving from its own thread until told to stop.
    let (config_tx, config_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async move {
            let sim = KubeSim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
            config_tx.send(sim.config().unwrap()).unwrap();
            let _ = stopped.await;
            let _ = sim.shutdown().await;
        })
    });
    let config = config_rx.recv().unwrap();

    // A test that makes a namespace, a labelled cluster-scoped object and a
    // namespace of its prefix holding an object its (stopped) controller
    // would have released, each held by a finalizer, and then fails.
    let made = Arc::new(Mutex::new(String::new()));
    let (cfg, name) = (config.clone(), made.clone());
    let failed = on_own_runtime(move |rt| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async move {
                let mut tc = TestCluster::connect(cfg);
                *name.lock().unwrap() = tc.namespace("harness").await;
                let held = |v: serde_json::Value| {
                    let mut v = v;
                    v["metadata"]["finalizers"] = serde_json::json!(["test.paddock.dev/hold"]);
                    v
                };
                let pvs: Api<PersistentVolume> = Api::all(tc.client.clone());
                let pv = held(serde_json::json!({"metadata": {"name": "harness-pv", "labels": {"harness-run": "r1"}},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/h"}}}));
                pvs.create(&PostParams::default(), &serde_json::from_value(pv).unwrap()).await.unwrap();
                tc.owns_labelled(ApiResource::erase::<PersistentVolume>(&()), "harness-run=r1");
                let nss: Api<Namespace> = Api::all(tc.client.clone());
                let ns = serde_json::json!({"metadata": {"name": "harnessrun-made-by-a-controller"}});
                nss.create(&PostParams::default(), &serde_json::from_value(ns).unwrap()).await.unwrap();
                let cms: Api<ConfigMap> = Api::namespaced(tc.client.clone(), "harnessrun-made-by-a-controller");
                let cm = held(serde_json::json!({"metadata": {"name": "held"}}));
                cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap()).await.unwrap();
                tc.owns_prefixed("harnessrun-", vec![ApiResource::erase::<ConfigMap>(&())]);
                panic!("a deliberate failure, to see the harness clean up after it");
            })
        }))
        .is_err()
    });
    assert!(failed);
    // Its cluster-scoped object and its prefixed namespace are gone, their
    // finalizers removed by the harness.
    let gone = on_own_runtime({
        let config = config.clone();
        move |rt| {
            rt.block_on(async move {
                let client = kube::Client::try_from(config).unwrap();
                let (pvs, nss) = (Api::<PersistentVolume>::all(client.clone()), Api::<Namespace>::all(client));
                kubesim::testing::wait_gone(&pvs, "harness-pv", std::time::Duration::from_secs(30)).await;
                kubesim::testing::wait_gone(
                    &nss,
                    "harnessrun-made-by-a-controller",
                    std::time::Duration::from_secs(30),
                )
                .await;
                true
            })
        }
    });
    assert!(gone);

    // Its namespace is being deleted (or gone) all the same.
    let ns = made.lock().unwrap().clone();
    assert!(!ns.is_empty());
    let deleting = on_own_runtime(move |rt| {
        rt.block_on(async move {
            let api: Api<Namespace> = Api::all(kube::Client::try_from(config).unwrap());
            api.get_opt(&ns).await.unwrap().is_none_or(|n| n.metadata.deletion_timestamp.is_some())
        })
    });
    assert!(deleting, "the failed test's namespace was left as it was");
    let _ = stop.send(());
    server.join().unwrap();
}
