//! The test harness itself: a test that fails on a cluster that outlives it
//! (a real one, here a simulator on a runtime of its own) still deletes the
//! namespaces it made.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
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

    // A test that makes a namespace and then fails.
    let made = Arc::new(Mutex::new(String::new()));
    let (cfg, name) = (config.clone(), made.clone());
    let failed = on_own_runtime(move |rt| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async move {
                let mut tc = TestCluster::connect(cfg);
                *name.lock().unwrap() = tc.namespace("harness").await;
                panic!("a deliberate failure, to see the harness clean up after it");
            })
        }))
        .is_err()
    });
    assert!(failed);

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
