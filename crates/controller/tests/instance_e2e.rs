//! Instances end to end through the real tenant and instance controllers, on
//! kubesim (or a real cluster with PADDOCK_TEST_KUBECONFIG).

use controller::config::Settings;
use controller::{instance, tenant};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::conditions;
use kubesim::testing::{TestCluster, wait_for, wait_gone, wait_until};
use resources::{Instance, InstancePhase, Template, Tenant};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn install(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in resources::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&crd)).await.unwrap();
        let est = kube::runtime::wait::await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(T, est).await.unwrap().unwrap();
    }
}

fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/templates/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn phase(i: &Instance) -> Option<InstancePhase> {
    i.status.as_ref().and_then(|s| s.phase)
}

fn reason(i: &Instance) -> String {
    i.status.as_ref().and_then(|s| s.conditions.first()).map(|c| c.reason.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_start_heal_limit_fail_and_expire() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let tc = TestCluster::start().await;
    install(&tc.client).await;
    let settings = Settings { namespace_prefix: format!("pi{}-", std::process::id() % 100000), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures_stop(rx);
    let t_ctx = tenant::Context::new(tc.client.clone(), settings.clone());
    let i_ctx = instance::reconcile::Context::new(tc.client.clone(), settings.clone());
    let h1 = tokio::spawn(tenant::run(t_ctx, stop.clone()));
    let h2 = tokio::spawn(instance::reconcile::run(i_ctx, stop.clone()));
    let h3 = tokio::spawn(controller::template::run(tc.client.clone(), stop));

    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant = serde_json::from_value(
        json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "red"},
        "spec": {"kind": "Team", "storage": {"size": "1Gi"}}}),
    )
    .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, "red", T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
    let ns = t.status.unwrap().namespace.unwrap();

    let templates: Api<Template> = Api::all(tc.client.clone());
    let mut ctf = example("ctf-web");
    ctf["spec"]["ttl"] = json!("1h");
    templates.patch("ctf-web", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&ctf)).await.unwrap();
    let bad = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "broken-image"},
        "spec": {"pods": [{"name": "app", "image": "registry.example/doesnotexist:1"}]}});
    templates.patch("broken-image", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&bad)).await.unwrap();
    let short = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "short-lived"},
        "spec": {"ttl": "3s", "pods": [{"name": "app", "image": "busybox:1.36"}]}});
    templates.patch("short-lived", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&short)).await.unwrap();

    // The template controller accepts good templates and says why it refuses bad ones.
    wait_for(&templates, "ctf-web", T, |t| {
        t.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Accepted" && c.status == "True"))
    })
    .await;
    let invalid = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "invalid"},
        "spec": {"networks": ["a"], "pods": [{"name": "x", "image": "busybox", "networks": ["b"]}]}});
    templates.patch("invalid", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&invalid)).await.unwrap();
    let t = wait_for(&templates, "invalid", T, |t| t.status.as_ref().is_some_and(|s| !s.conditions.is_empty())).await;
    assert_eq!(
        t.status.unwrap().conditions[0].message,
        "spec.pods[0].networks[0]: network \"b\" is not declared in spec.networks"
    );

    let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &ns);
    let new = |name: &str, template: &str| -> Instance {
        serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance", "metadata": {"name": name}, "spec": {"template": template}})).unwrap()
    };
    insts.create(&PostParams::default(), &new("web1", "ctf-web")).await.unwrap();
    let i = wait_for(&insts, "web1", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let st = i.status.unwrap();
    assert_eq!(st.pods.len(), 3);
    assert!(st.pods.iter().all(|p| p.ready && p.node.is_some() && p.pod_ip.is_some()));
    assert!(st.expires.is_some() && st.ready.is_some() && st.scheduled.is_some());
    let web = st.endpoints.iter().find(|e| e.pod == "web" && e.port == "http").unwrap();
    assert!(web.node_port.is_some_and(|p| (30000..=32767).contains(&p)), "{web:?}");
    assert_eq!(web.cluster_dns.as_deref(), Some(format!("web.web1.{ns}.svc:8080").as_str()));

    // A pod deleted by hand is recreated.
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let old_uid = pods.get("web1-db").await.unwrap().metadata.uid;
    pods.delete("web1-db", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_until(T, "web1-db recreated", || async {
        pods.get_opt("web1-db").await.ok().flatten().is_some_and(|p| p.metadata.uid != old_uid)
    })
    .await;
    wait_for(&insts, "web1", T, |i| phase(i) == Some(InstancePhase::Running)).await;

    // maxPerTenant is 1.
    insts.create(&PostParams::default(), &new("web2", "ctf-web")).await.unwrap();
    let i = wait_for(&insts, "web2", T, |i| phase(i).is_some()).await;
    assert_eq!((phase(&i), reason(&i).as_str()), (Some(InstancePhase::Failed), "LimitReached"));
    assert!(pods.list(&ListParams::default().labels("paddock.dev/instance=web2")).await.unwrap().items.is_empty());

    // A bad image fails with the image named.
    insts.create(&PostParams::default(), &new("bad", "broken-image")).await.unwrap();
    let i = wait_for(&insts, "bad", T, |i| reason(i) == "ImagePullFailed").await;
    let msg = i.status.unwrap().conditions[0].message.clone();
    assert!(msg.contains("registry.example/doesnotexist:1"), "{msg}");

    // An unknown template.
    insts.create(&PostParams::default(), &new("ghost", "no-such-template")).await.unwrap();
    wait_for(&insts, "ghost", T, |i| reason(i) == "TemplateInvalid").await;

    // TTL: the instance expires on time and its pods go.
    insts.create(&PostParams::default(), &new("brief", "short-lived")).await.unwrap();
    wait_for(&insts, "brief", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    wait_for(&insts, "brief", T, |i| phase(i) == Some(InstancePhase::Expired)).await;
    wait_until(T, "brief's pods removed", || async {
        pods.list(&ListParams::default().labels("paddock.dev/instance=brief")).await.unwrap().items.is_empty()
    })
    .await;

    // Stopping: deleting the Instance removes what it created.
    insts.delete("web1", &DeleteParams::default()).await.unwrap();
    wait_gone(&insts, "web1", T).await;
    assert!(pods.list(&ListParams::default().labels("paddock.dev/instance=web1")).await.unwrap().items.is_empty());

    for n in ["web2", "bad", "ghost", "brief"] {
        let _ = insts.delete(n, &DeleteParams::default()).await;
    }
    tenants.delete("red", &DeleteParams::default()).await.unwrap();
    wait_gone(&tenants, "red", T).await;
    for n in ["ctf-web", "broken-image", "short-lived", "invalid"] {
        let _ = templates.delete(n, &DeleteParams::default()).await;
    }
    let _ = tx.send(());
    let _ = tokio::time::timeout(T, h1).await;
    let _ = tokio::time::timeout(T, h2).await;
    let _ = tokio::time::timeout(T, h3).await;
    tc.finish().await;
}

/// A cloneable shutdown future.
fn futures_stop(
    rx: tokio::sync::oneshot::Receiver<()>,
) -> futures::future::Shared<futures::future::BoxFuture<'static, ()>> {
    use futures::FutureExt;
    async move {
        let _ = rx.await;
    }
    .boxed()
    .shared()
}
