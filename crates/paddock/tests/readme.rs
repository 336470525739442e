//! Every complete Paddock manifest in the README and the pages of `docs/` (a
//! fenced `yaml` block with `apiVersion: paddock.dev/v1alpha1`) is applied
//! to a cluster with the reconcilers running and must become Ready (Tenants)
//! or Accepted (Templates, Clusters; see `doc_ready`): the documentation
//! cannot drift from the code. On kubesim, or a real
//! cluster with PADDOCK_TEST_KUBECONFIG (names get a suffix unique to the run).

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kubesim::testing::{TestCluster, wait_until};
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// The README and every page of `docs/`.
fn pages() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is there")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths.into_iter().map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("a page reads"))).collect()
}

/// The Paddock documents of the pages' yaml blocks.
fn readme_manifests() -> Vec<Value> {
    let mut out = Vec::new();
    for (page, text) in pages() {
        out.extend(manifests_of(&page, &text));
    }
    out
}

fn manifests_of(page: &str, text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => block = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                for doc in b.split("\n---\n") {
                    let v: Value =
                        serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("a yaml block of {page}: {e}"));
                    if v["apiVersion"] == "paddock.dev/v1alpha1" {
                        out.push(v);
                    }
                }
                block = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_manifest_becomes_ready() {
    let mut tc = TestCluster::start().await;
    let run = format!("rd{}", std::process::id() % 100_000);
    let suffix = format!("-{run}");
    // Its own namespaces and scope, on a cluster shared with other runs; what
    // it made goes when it ends there, passed or failed.
    let settings = controller::config::Settings {
        namespace_prefix: format!("{run}-"),
        system_namespace: format!("{run}-system"),
        pool_namespace: format!("{run}-pool"),
        scope: Some(("paddock.dev/test-run".into(), run.clone())),
        ..Default::default()
    };
    for ar in [
        ApiResource::erase::<resources::Tenant>(&()),
        ApiResource::erase::<resources::Template>(&()),
        ApiResource::erase::<resources::cluster::ClusterProfile>(&()),
    ] {
        tc.owns_labelled(ar, &format!("paddock.dev/test-run={run}"));
    }
    tc.owns_prefixed(
        &format!("{run}-"),
        vec![ApiResource::erase::<resources::Instance>(&()), ApiResource::erase::<resources::cluster::Cluster>(&())],
    );
    controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
    controller::install::namespace(&tc.client, &settings.system_namespace, "paddock-test").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        let _ = stop_rx.await;
    }));
    let metrics = std::sync::Arc::new(controller::metrics::Metrics::default());
    let reconcilers = tokio::spawn(controller::install::reconcilers(tc.client.clone(), settings, metrics, stop));

    let docs = readme_manifests();
    assert!(docs.iter().any(|d| d["kind"] == "Tenant"), "the README shows a Tenant");
    // Groups first, so members find them; every name (and group reference) suffixed.
    let mut docs: Vec<Value> = docs
        .into_iter()
        .map(|mut d| {
            let name = format!("{}{suffix}", d["metadata"]["name"].as_str().unwrap());
            d["metadata"]["name"] = Value::from(name);
            d["metadata"]["labels"]["paddock.dev/test-run"] = Value::from(run.clone());
            if let Some(groups) = d.pointer_mut("/spec/groups").and_then(Value::as_array_mut) {
                for g in groups {
                    *g = Value::from(format!("{}{suffix}", g.as_str().unwrap()));
                }
            }
            d
        })
        .collect();
    let mut names: Vec<(String, String)> =
        docs.iter().map(|d| (d["kind"].to_string(), d["metadata"]["name"].to_string())).collect();
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "two pages show the same kind and name: each example must stand alone");
    docs.sort_by_key(|d| d.pointer("/spec/kind") != Some(&Value::from("Group")));
    // The tenants' retained volumes are the test's too.
    let tenants: Vec<&str> =
        docs.iter().filter(|d| d["kind"] == "Tenant").filter_map(|d| d["metadata"]["name"].as_str()).collect();
    let volumes = format!("paddock.dev/tenant in ({})", tenants.join(","));
    tc.owns_labelled(ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolume>(&()), &volumes);
    // Clusters go into their tenants' namespaces, so after the tenants.
    let (clusters, docs): (Vec<Value>, Vec<Value>) = docs.into_iter().partition(|d| d["kind"] == "Cluster");
    let mut made = Vec::new();
    for d in &docs {
        made.push(apply_doc(&tc.client, d).await);
    }
    for (api, name, kind) in &made {
        wait_until(T, &format!("{kind} {name} from the README is ready"), || async {
            doc_ready(kind, &api.get(name).await.unwrap().data)
        })
        .await;
    }
    let mut made_clusters = Vec::new();
    for mut d in clusters {
        // `paddock-<tenant>` is the docs' tenant's namespace: here that tenant is suffixed and prefixed.
        let ns = d["metadata"]["namespace"].as_str().and_then(|n| n.strip_prefix("paddock-")).unwrap().to_string();
        d["metadata"]["namespace"] = Value::from(format!("{run}-{ns}{suffix}"));
        if let Some(p) = d.pointer_mut("/spec/profile") {
            *p = Value::from(format!("{}{suffix}", p.as_str().unwrap()));
        }
        made_clusters.push(apply_doc(&tc.client, &d).await);
    }
    for (api, name, kind) in &made_clusters {
        wait_until(T, &format!("{kind} {name} from the README is judged"), || async {
            doc_ready(kind, &api.get(name).await.unwrap().data)
        })
        .await;
    }
    made_clusters.extend(made);
    let made = made_clusters;
    for (api, name, _) in &made {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    for (api, name, _) in &made {
        wait_until(T, &format!("{name} is gone"), || async { api.get_opt(name).await.unwrap().is_none() }).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(T, reconcilers).await;
    tc.finish().await;
}

/// Applies one document of the docs as they write it.
async fn apply_doc(client: &kube::Client, d: &Value) -> (Api<DynamicObject>, String, &'static str) {
    let (kind, ar) = match d["kind"].as_str().unwrap() {
        "Tenant" => ("Tenant", ApiResource::erase::<resources::Tenant>(&())),
        "Template" => ("Template", ApiResource::erase::<resources::Template>(&())),
        "ClusterProfile" => ("ClusterProfile", ApiResource::erase::<resources::cluster::ClusterProfile>(&())),
        "Cluster" => ("Cluster", ApiResource::erase::<resources::cluster::Cluster>(&())),
        other => panic!("the README shows a {other}, which this test does not know"),
    };
    let api: Api<DynamicObject> = match d["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let name = d["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(&name, &PatchParams::apply("paddock-readme").force(), &Patch::Apply(d))
        .await
        .unwrap_or_else(|e| panic!("{kind} {name} as the README writes it: {e}"));
    (api, name, kind)
}

/// Whether a document's object is as the docs promise: a Tenant Ready, a
/// Template Accepted, a ClusterProfile stored (it has no status; the
/// clusters built from it judge it). A Cluster is Accepted, or refused
/// only because Cluster API or the profile's infrastructure provider is not
/// installed here, every check of its own fields and its profile's passed
/// (no machines boot in this test: `api/tests/clusters.rs` builds them).
fn doc_ready(kind: &str, o: &Value) -> bool {
    let accepted = o["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Accepted"));
    match kind {
        "Tenant" => o["status"]["phase"] == "Ready",
        "ClusterProfile" => true,
        "Cluster" => accepted.is_some_and(|c| {
            c["status"] == "True" || ["ClusterAPIMissing", "InfrastructureMissing"].iter().any(|r| c["reason"] == *r)
        }),
        _ => accepted.is_some_and(|c| c["status"] == "True"),
    }
}

/// GitHub's anchor of a heading: lowercase, spaces to '-', punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every relative link of the README and docs/ names a file of the
/// repository, and an anchor a heading of that file.
#[test]
fn links_point_at_what_exists() {
    let mut broken = Vec::new();
    for (path, text) in pages() {
        let dir = std::path::Path::new(&path).parent().unwrap().to_path_buf();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.starts_with("http") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (file, frag) = target.split_once('#').unwrap_or((target, ""));
            let file_path = if file.is_empty() { std::path::PathBuf::from(&path) } else { dir.join(file) };
            let Ok(linked) = std::fs::read_to_string(&file_path) else {
                if !file_path.exists() {
                    broken.push(format!("{path}: {target} (no such file)"));
                }
                continue;
            };
            if !frag.is_empty()
                && !linked
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .any(|h| anchor(h.trim_start_matches('#')) == frag)
            {
                broken.push(format!("{path}: {target} (no such heading)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
