//! `paddock dev` as a process: it comes up with the demo tenant and templates,
//! instances started through the Kubernetes API and through the CLI (against
//! the API it prints) run, the CLI's exit codes hold, and SIGTERM stops it.

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
        .args(["dev", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--kubeconfig-out"])
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

    cli_against_the_api(&banner).await;

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "paddock dev exits cleanly on SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `paddock ARGS` with the URL and token; returns (exit code, stdout, stderr).
fn paddock(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .env("PADDOCK_URL", url)
        .env("PADDOCK_TOKEN", token)
        .env_remove("PADDOCK_TENANT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn cli_against_the_api(banner: &str) {
    let value = |key: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{key} in {banner}"))
    };
    let (url, admin) = (value("API:"), value("admin token:"));
    assert!(banner.contains("paddock instance start ctf-web --tenant demo --wait"), "{banner}");
    let run = |token: String, args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || paddock(&url, &token, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let sv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, out, err) = run(admin.clone(), sv(&["tenant", "list"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME") && out.contains("demo"), "{out}");
    let (code, out, err) = run(admin.clone(), sv(&["template", "list", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t.as_array().unwrap().len(), 3, "{out}");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/templates");
    let (code, out, err) = run(admin.clone(), sv(&["template", "apply", "-f", examples])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ctf-web") && out.contains("notebook"), "{out}");

    // A tenant token for demo; the CLI infers the tenant from it.
    let (code, out, err) = run(admin.clone(), sv(&["token", "issue", "--tenant", "demo", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let token = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"].as_str().unwrap().to_string();
    let (code, out, err) =
        run(token.clone(), sv(&["instance", "start", "ci-runner", "--wait", "--timeout", "60s", "-o", "yaml"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    let started: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(started["phase"], "Running", "{out}");
    let name = started["name"].as_str().unwrap().to_string();
    let (code, out, _) = run(token.clone(), sv(&["instance", "list"])).await.unwrap();
    assert_eq!(code, 0);
    assert!(out.contains(&name) && out.contains("Running"), "{out}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "renew", &name])).await.unwrap();
    assert!(code == 0 || err.contains("maxTtl"), "{code} {err}");

    // Refusals exit 1 with the API's reason; a bad token or no API exits 2.
    let (code, _, err) = run(token.clone(), sv(&["tenant", "create", "intruder"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only an admin token may create tenants"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "start", "no-such-template"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("template: there is no template"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "get", "x", "--tenant", "someone-else"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tenant \"someone-else\" does not exist"), "{err}");
    let (code, _, err) = run("pdk.demo.0.nope".into(), sv(&["instance", "list"])).await.unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "start", "ctf-web", "--ttl", "soon"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ttl:"), "{err}");

    // The demo team's VPN: a wg-quick file for client 2.
    let mut conf = String::new();
    for _ in 0..100 {
        let (code, out, _) = run(token.clone(), sv(&["vpn", "config", "--client", "2"])).await.unwrap();
        if code == 0 {
            conf = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(conf.starts_with("[Interface]") && conf.contains("Endpoint = 127.0.0.1:"), "{conf}");
    let (code, out, err) = run(token.clone(), sv(&["vpn", "clients"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");

    let (code, _, err) = run(token.clone(), sv(&["instance", "stop", &name])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(admin.clone(), sv(&["token", "list", "--tenant", "demo"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() == 2 && !out.contains(&token), "{out}");
}
