//! One watch per kind per process: `paddock serve` runs the API and the
//! reconcilers in one process, and both read Tenants, Templates, Instances,
//! the tenants' ResourceQuotas and the warm pools' pods from one shared index
//! (`controller::index`), so the API server serves one watch of each, not one
//! per reader (Templates
//! were watched four times, Tenants and Instances twice, the pool's pods
//! twice). Pods have three watches, of three sets no pod is in twice (a
//! label selector cannot say "this or that", and a watch of every pod in the
//! cluster would cost far more): the pools' (pool namespace, by pool label),
//! the instances' own (by instance label), and the tenants' VPN servers (by
//! component label).

use kubesim::testing::{TestCluster, wait_until};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_serve_watches_each_kind_once() {
    let tc = TestCluster::start().await;
    let Some(sim) = tc.sim("a real API server does not say how many watches a client holds open") else { return };
    let dir = std::env::temp_dir().join(format!("paddock-watches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = tc.kubeconfig_file(&dir);
    controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
    let settings = controller::config::Settings::default();
    controller::install::namespace(&tc.client, &settings.system_namespace, "paddock-test").await.unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let kinds = ["templates", "tenants", "instances", "resourcequotas", "pods"];
    let counts = || kinds.map(|k| sim.open_watches(k));
    // Every reader is up once the leader's reconcilers watch the pool's pods
    // and the instances' own; then a while for any late duplicate to show.
    wait_until(T, "paddock serve watching", || async {
        counts().iter().all(|n| *n > 0) && sim.open_watches("pods") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = counts();
    let _ = serve.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, [1, 1, 1, 1, 3], "open watches of {kinds:?}");
}
