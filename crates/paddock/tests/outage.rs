//! `paddock controller` when the API server goes away: its watches say so in
//! its log, in one line each, while the kube client's own context-free error
//! lines stay off.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_is_logged_by_the_watches() {
    let dir = std::env::temp_dir().join(format!("paddock-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["sim", "--listen", "127.0.0.1:0", "--nodes", "1", "--kubeconfig-out"])
        .arg(&kc)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kc.exists() {
        assert!(Instant::now() < deadline, "paddock sim did not write its kubeconfig");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kc).unwrap(), &Default::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    controller::install::crds(&client, "paddock-test", Duration::from_secs(30)).await.unwrap();

    let log = dir.join("controller.log");
    let mut ctl = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["controller", "--no-leader-election", "--health-listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kc)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Running: its watches list and watch; then the API server goes away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = sim.kill();
    let _ = sim.wait();
    kubesim::testing::wait_until(Duration::from_secs(30), "the controller logs the outage", || async {
        std::fs::read_to_string(&log).unwrap_or_default().contains("a watch failed")
    })
    .await;
    let _ = ctl.kill();
    let _ = ctl.wait();
    let mut out = String::new();
    std::fs::File::open(&log).unwrap().read_to_string(&mut out).unwrap();
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("a watch failed")).collect();
    assert!(failed.iter().all(|l| !l.contains("Status {")), "one line each, no Debug dump:\n{out}");
    assert!(!out.contains("kube_client::client"), "the kube client's own lines are off:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
