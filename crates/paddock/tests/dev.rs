//! `paddock dev` as a process: it comes up with the demo tenant and templates,
//! an instance started through the Kubernetes API runs, and SIGTERM stops it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use resources::{Instance, InstancePhase, Tenant};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_dev_runs_the_platform() {
    let dir = std::env::temp_dir().join(format!("paddock-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["dev", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Ctrl-C stops it.") {
                break;
            }
        }
        text
    });
    let banner = tokio::time::timeout(Duration::from_secs(60), banner).await.expect("paddock dev came up").unwrap();
    assert!(banner.contains("paddock dev is running"), "{banner}");

    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kc).unwrap(), &Default::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let tenants: Api<Tenant> = Api::all(client.clone());
    kubesim::testing::wait_for(&tenants, "demo", Duration::from_secs(30), |t| {
        t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
    })
    .await;
    let insts: Api<Instance> = Api::namespaced(client.clone(), "paddock-demo");
    let i: Instance = serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance", "metadata": {"name": "web1"}, "spec": {"template": "ctf-web"}})).unwrap();
    insts.create(&PostParams::default(), &i).await.unwrap();
    kubesim::testing::wait_for(&insts, "web1", Duration::from_secs(30), |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "paddock-demo");
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        let node = p.spec.unwrap().node_name.unwrap();
        assert!(
            node.starts_with("task-") || node.starts_with("shared-"),
            "task pods only on task/shared nodes, got {node}"
        );
    }

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "paddock dev exits cleanly on SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
