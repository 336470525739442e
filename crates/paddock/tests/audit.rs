//! `paddock audit` end to end, on kubesim (or a real cluster with
//! PADDOCK_TEST_KUBECONFIG): a leaky setup fails the audit, a tight one passes.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubesim::testing::TestCluster;
use serde_json::{Value, json};
use std::process::Command;

/// Runs `paddock audit` off the async runtime (kubesim serves from this process).
async fn audit(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_paddock")).arg("audit").arg("--kubeconfig").arg(kubeconfig).args(args).output()
    })
    .await
    .expect("join")
    .expect("paddock runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_fails_a_leaky_cluster_and_passes_a_tight_one() {
    let mut tc = TestCluster::start().await;
    let dir = std::env::temp_dir().join(format!("paddock-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = tc.kubeconfig_file(&dir);
    // A label only this test uses, so other tenants on a real cluster stay out of it.
    let key = format!("audit-{}.test.paddock.dev/tenant", std::process::id());
    let a = tc.namespace("audit-a").await;
    let b = tc.namespace("audit-b").await;
    let nss: Api<Namespace> = Api::all(tc.client.clone());
    for (ns, t) in [(&a, "alpha"), (&b, "beta")] {
        nss.patch(ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {&key: t}}})))
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(tc.client.clone(), ns);
        for (name, role) in [("web", "web"), ("db", "db")] {
            let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"role": role}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"name": "port", "containerPort": if role == "db" { 5432 } else { 80 }}]}]}}))
            .unwrap();
            pods.create(&PostParams::default(), &p).await.unwrap();
        }
    }

    let (code, out, err) = audit(&kubeconfig, &["--tenant-label", &key, "-o", "json"]).await;
    assert_eq!(code, 1, "a leaky cluster fails the audit\n{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["crossTenantPaths"].as_u64().unwrap() >= 8, "{v}");
    let alpha = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "alpha").unwrap();
    assert_eq!(alpha["withoutPolicy"].as_array().unwrap().len(), 2);
    assert_eq!(alpha["reachableFromOutside"].as_array().unwrap().len(), 2);

    for ns in [&a, &b] {
        let pols: Api<NetworkPolicy> = Api::namespaced(tc.client.clone(), ns);
        for spec in [
            json!({"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
            json!({"metadata": {"name": "web-to-db"}, "spec": {"podSelector": {"matchLabels": {"role": "db"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "web"}}}], "ports": [{"port": 5432}]}]}}),
            json!({"metadata": {"name": "web-out"}, "spec": {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "db"}}}], "ports": [{"port": 5432}]}]}}),
        ] {
            pols.create(&PostParams::default(), &serde_json::from_value(spec).unwrap()).await.unwrap();
        }
    }
    let (code, out, err) = audit(&kubeconfig, &["--tenant-label", &key]).await;
    assert_eq!(code, 0, "a tight cluster passes\n{out}\n{err}");
    assert!(out.contains("isolated: no path crosses tenants"), "{out}");
    assert!(out.contains("alpha"), "{out}");

    let (code, out, _) =
        audit(&kubeconfig, &["--from", &format!("{a}/web"), "--to", &format!("{a}/db"), "--port", "5432"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("allowed by {a}/web-to-db ingress rule 0")), "{out}");
    let (code, out, _) =
        audit(&kubeconfig, &["--from", &format!("{b}/web"), "--to", &format!("{a}/db"), "--port", "5432"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("denied:"), "{out}");

    // Bad input gets one clear line and exit code 2.
    let (code, _, err) = audit(&dir.join("missing-kubeconfig"), &[]).await;
    assert_eq!(code, 2);
    assert!(err.starts_with("paddock: cannot use kubeconfig"), "{err}");
    let (code, _, err) = audit(&kubeconfig, &["--context", "nope"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("context \"nope\" is not in"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}

/// The audit lists the templates that relax the hardened pod, next to its
/// network report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lists_templates_that_relax_the_hardened_pod() {
    let tc = TestCluster::start().await;
    let dir = std::env::temp_dir().join(format!("paddock-audit-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = tc.kubeconfig_file(&dir);
    controller::install::crds(&tc.client, "paddock-test", std::time::Duration::from_secs(30)).await.unwrap();
    let name = format!("relaxed-{}", std::process::id());
    let tpl: resources::Template = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1",
        "kind": "Template", "metadata": {"name": name}, "spec": {"runtimeClassName": "runc",
        "pods": [{"name": "web", "image": "nginx", "security": {"capabilities": ["NET_ADMIN"], "runAsRoot": true},
            "env": [{"name": "TOKEN", "secret": {"name": "ci-token", "key": "t"}}]}]}}))
    .unwrap();
    let api: Api<resources::Template> = Api::all(tc.client.clone());
    api.create(&PostParams::default(), &tpl).await.unwrap();
    let (_, out, err) = audit(
        &kubeconfig,
        &["--tenant-label", "none.test.paddock.dev/tenant", "--runtime-class", "gvisor", "-o", "json"],
    )
    .await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let mine = v["relaxedTemplates"].as_array().unwrap().iter().find(|t| t["template"] == name.as_str()).unwrap();
    let relaxes: Vec<&str> = mine["relaxes"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(
        relaxes,
        [
            "runs with runtime class \"runc\" instead of the installation's (gvisor)",
            "pod web: adds capabilities NET_ADMIN",
            "pod web: may run as root",
            "pod web: TOKEN reads Secret ci-token/t"
        ]
    );
    let _ = api.delete(&name, &Default::default()).await;
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}
