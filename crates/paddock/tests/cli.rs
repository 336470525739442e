//! The CLI's document commands and its handling of bad input: one clear line,
//! exit code 2.

use kubesim::testing::TestCluster;
use std::process::{Command, Output};

fn paddock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).output().expect("paddock runs")
}

async fn paddock_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_paddock")).args(&args).output().expect("paddock runs")
    })
    .await
    .expect("join")
}

#[test]
fn crds_and_manifests_print_yaml() {
    // CRDs for the version they go to: 1.29 compiles the quantity rule, 1.28 does not have it.
    let out = paddock(&["crds", "--kubernetes-version", "1.29"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name: tenants.paddock.dev"));
    assert!(text.contains("quantity(self)"));
    let out = paddock(&["crds", "--kubernetes-version", "v1.28.7"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name: tenants.paddock.dev") && !text.contains("quantity("), "{text}");
    let out = paddock(&["crds", "--kubernetes-version", "1.27"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("older than Paddock supports (1.28 to"));

    let out = paddock(&["manifests", "--image", "registry.example/paddock:1.0", "--with-runtime-class"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let docs: Vec<serde_json::Value> =
        text.split("\n---\n").map(|d| serde_yaml_ng::from_str(d.trim_start_matches("---\n")).unwrap()).collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for k in [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "NetworkPolicy",
        "RuntimeClass",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let deployments = |docs: &[serde_json::Value]| -> Vec<(String, String)> {
        docs.iter()
            .filter(|d| d["kind"] == "Deployment")
            .map(|d| {
                let c = &d["spec"]["template"]["spec"]["containers"][0];
                (d["metadata"]["name"].as_str().unwrap().to_string(), c["args"][0].as_str().unwrap().to_string())
            })
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(deployments(&docs), [pair("paddock-controller", "controller"), pair("paddock-api", "api")]);
    let out = paddock(&["manifests", "--layout", "combined"]);
    assert!(out.status.success());
    let combined: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d.trim_start_matches("---\n")).unwrap())
        .collect();
    assert_eq!(deployments(&combined), [pair("paddock-server", "serve")]);
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    for r in role["rules"].as_array().unwrap() {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(r[field].as_array().unwrap().iter().all(|v| v != "*"), "no wildcards: {r}");
        }
    }
    let dep = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(dep["spec"]["replicas"], 2);
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/paddock:1.0");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
    assert!(c["livenessProbe"].is_object() && c["readinessProbe"].is_object() && c["resources"]["limits"].is_object());
    let pdb = docs.iter().find(|d| d["kind"] == "PodDisruptionBudget").unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

#[test]
fn bad_flags_get_one_clear_line() {
    let cases: [(&[&str], &str); 11] = [
        (&["controller", "--scope", "staging"], "--scope \"staging\": KEY=VALUE"),
        (&["controller", "--scope", "Bad Key=x"], "is not a label key"),
        (&["serve", "--scope", "paddock.dev/installation="], "is not a label value"),
        (&["controller", "--namespace-prefix", "Bad_Prefix"], "--namespace-prefix \"Bad_Prefix\""),
        (&["controller", "--max-concurrent-reconciles", "0"], "--max-concurrent-reconciles 0: must be 1 to 1024"),
        (&["controller", "--default-cpu-request", "lots"], "--default-cpu-request \"lots\""),
        (&["controller", "--kubeconfig", "/nonexistent/kubeconfig"], "cannot use kubeconfig /nonexistent/kubeconfig"),
        (&["manifests", "--system-namespace", "Not Valid"], "--system-namespace"),
        // Checked before the API connects to any cluster.
        (&["api", "--kubeconfig-server", "kube.example.com:6443"], "--kubeconfig-server \"kube.example.com:6443\""),
        (
            &["api", "--kubeconfig-ca-file", "/nonexistent/ca.pem"],
            "--kubeconfig-ca-file /nonexistent/ca.pem: cannot read",
        ),
        (&["serve", "--kubeconfig-ca-file", "Cargo.toml"], "--kubeconfig-ca-file Cargo.toml: not a PEM certificate"),
    ];
    for (args, want) in cases {
        let out = paddock(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.lines().count() == 1 && err.contains(want), "{args:?}: {err}");
    }
    let out = paddock(&["--log-level", "loud=[", "crds"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_set_role_labels_and_taints() {
    let tc = TestCluster::start().await;
    let Some(_) = tc.sim("changes a node's labels and taints") else { return };
    let dir = std::env::temp_dir().join(format!("paddock-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = tc.kubeconfig_file(&dir).to_string_lossy().to_string();
    let out = paddock_async(vec![
        "nodes".into(),
        "--kubeconfig".into(),
        kc.clone(),
        "set-role".into(),
        "node-1".into(),
        "vpn".into(),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = paddock_async(vec!["nodes".into(), "--kubeconfig".into(), kc.clone()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("node-1") && l.contains("vpn") && l.contains("NoSchedule")), "{text}");
    let out = paddock_async(vec![
        "nodes".into(),
        "--kubeconfig".into(),
        kc.clone(),
        "set-role".into(),
        "node-1".into(),
        "task".into(),
        "--taint".into(),
        "none".into(),
    ])
    .await;
    assert!(out.status.success());
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(tc.client.clone());
    let n = nodes.get("node-1").await.unwrap();
    assert_eq!(n.metadata.labels.unwrap()["paddock.dev/node-role"], "task");
    assert!(n.spec.unwrap().taints.unwrap_or_default().iter().all(|t| t.key != "paddock.dev/node-role"));
    // The list for scripts.
    let out = paddock_async(vec!["nodes".into(), "--kubeconfig".into(), kc.clone(), "-o".into(), "json".into()]).await;
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == "node-1").unwrap().clone();
    assert_eq!((row["role"].as_str(), &row["taint"]), (Some("task"), &serde_json::Value::Null), "{row}");
    assert!(row["paddockPods"].is_u64(), "{row}");
    let out =
        paddock_async(vec!["nodes".into(), "--kubeconfig".into(), kc, "set-role".into(), "nope".into(), "task".into()])
            .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node \"nope\" does not exist"));
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}

#[test]
fn logs_to_a_file_or_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("paddock-ansi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["sim", "--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(dir.join("kubeconfig"))
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("paddock runs");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(line.contains("kubesim listening"), "{line:?}");
    assert!(!line.contains('\u{1b}'), "escape codes in a piped log: {line:?}");
}

/// `paddock dev` on a port in use says so once, in one line.
#[test]
fn dev_on_a_busy_port_says_so_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let kc = std::env::temp_dir().join(format!("paddock-busy-{}.kubeconfig", std::process::id()));
    let out = paddock(&["dev", "--listen", &format!("127.0.0.1:{port}"), "--kubeconfig-out", kc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("in use").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Every document of the install bundle passes the API server's strict field
/// validation (a server-side dry run, nothing is changed): on kubesim, and on
/// a real cluster with PADDOCK_TEST_KUBECONFIG, for its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_passes_strict_field_validation() {
    let tc = kubesim::testing::TestCluster::start().await;
    let dir = std::env::temp_dir().join(format!("paddock-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = tc.kubeconfig_file(&dir);
    let out = paddock_async(vec![
        "manifests".into(),
        "--with-runtime-class".into(),
        "--kubeconfig".into(),
        kc.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let checked = dry_run_apply(&tc.client, &text).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(checked >= 15, "{checked} documents");
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}

/// Server-side applies every document of `text` as a strict dry run; the
/// number applied, or the first refusal.
async fn dry_run_apply(client: &kube::Client, text: &str) -> Result<usize, String> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
    let mut pp = PatchParams::apply("paddock-test").dry_run();
    pp.field_validation = Some(ValidationDirective::Strict);
    let mut checked = 0;
    for doc in text.split("\n---\n") {
        let v: serde_json::Value = serde_yaml_ng::from_str(doc.trim_start_matches("---\n")).unwrap();
        let (api_version, kind) = (v["apiVersion"].as_str().unwrap(), v["kind"].as_str().unwrap());
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("the cluster does not serve {api_version} {kind}: {e}"));
        let name = v["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match (caps.scope, v["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        match api.patch(name, &pp, &Patch::Apply(&v)).await {
            Ok(_) => checked += 1,
            // A namespaced object's namespace does not exist yet in a dry run.
            Err(kube::Error::Api(e)) if e.code == 404 && e.message.contains("namespaces") => checked += 1,
            Err(e) => return Err(format!("{kind} {name}: {e}")),
        }
    }
    Ok(checked)
}

/// On a Kubernetes 1.28 API server (kubesim emulating one) CRDs made for a
/// newer server are refused, as on a real 1.28 (the quantity rule does not
/// compile); the bundle made for the cluster it reaches installs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_is_made_for_the_servers_version() {
    let config =
        kubesim::SimConfig { kubernetes_version: kubesim::config::KubeVersion::new(1, 28), ..Default::default() };
    let tc = kubesim::testing::TestCluster::with_config(config).await;
    if tc.sim("the test emulates a 1.28 server").is_none() {
        return tc.finish().await;
    }
    let out = paddock_async(vec!["crds".into(), "--kubernetes-version".into(), "1.33".into()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e = dry_run_apply(&tc.client, &String::from_utf8_lossy(&out.stdout)).await.unwrap_err();
    assert!(e.contains("undeclared reference to 'quantity'"), "{e}");
    let dir = std::env::temp_dir().join(format!("paddock-bundle-128-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = tc.kubeconfig_file(&dir);
    let out = paddock_async(vec!["manifests".into(), "--kubeconfig".into(), kc.display().to_string()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checked =
        dry_run_apply(&tc.client, &String::from_utf8_lossy(&out.stdout)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(checked >= 15, "{checked} documents");
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}

/// Shell completions name the subcommands and their flags.
#[test]
fn completions_for_the_usual_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = paddock(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("instance") && script.contains("give-up-after"), "{shell}");
    }
    let out = paddock(&["completion", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}
