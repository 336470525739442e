//! Instances end to end through the real tenant and instance controllers, on
//! kubesim (or a real cluster with PADDOCK_TEST_KUBECONFIG).

use controller::config::Settings;
use controller::{instance, tenant};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_gone, wait_until};
use resources::{Instance, InstancePhase, Template, Tenant};
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::Run;

const T: Duration = Duration::from_secs(30);

async fn install(client: &kube::Client) {
    controller::install::crds(client, "paddock-test", T).await.unwrap();
}

fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/templates/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn phase(i: &Instance) -> Option<InstancePhase> {
    i.status.as_ref().and_then(|s| s.phase)
}

/// Waits until an Event with `reason` is recorded about `name` in `ns`; returns its (type, note).
async fn event(client: &kube::Client, ns: &str, name: &str, reason: &str) -> (String, String) {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let deadline = std::time::Instant::now() + T;
    loop {
        let found = api.list(&ListParams::default()).await.unwrap().items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        });
        if let Some(e) = found {
            return (e.type_.unwrap_or_default(), e.note.unwrap_or_default());
        }
        assert!(std::time::Instant::now() < deadline, "no {reason} event about {name} in {ns} within {T:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let mut tc = TestCluster::start().await;
    install(&tc.client).await;
    let run = Run::new("pi");
    run.own(&mut tc);
    let settings = run.settings();
    let [red, ctf_web, broken, short, invalid, very_invalid] =
        ["red", "ctf-web", "broken-image", "short-lived", "invalid", "very-invalid"].map(|n| run.name(n));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures_stop(rx);
    let t_ctx = tenant::Context::new(tc.client.clone(), settings.clone(), Default::default());
    let i_ctx = instance::reconcile::Context::new(tc.client.clone(), settings.clone(), Default::default());
    let h1 = tokio::spawn(tenant::run(t_ctx, stop.clone()));
    let h2 = tokio::spawn(instance::reconcile::run(i_ctx, stop.clone()));
    let h3 = tokio::spawn(controller::template::run(
        tc.client.clone(),
        settings.clone(),
        Default::default(),
        None,
        None,
        stop,
    ));

    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant = serde_json::from_value(run.labelled(
        // Its volume goes with it (tenant_e2e proves retention), on a shared cluster too.
        json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": &red},
        "spec": {"kind": "Team", "storage": {"size": "1Gi", "retainOnDelete": false}}}),
    ))
    .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, &red, T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
    let ns = t.status.unwrap().namespace.unwrap();

    let templates: Api<Template> = Api::all(tc.client.clone());
    let mut ctf = run.labelled(example("ctf-web"));
    ctf["metadata"]["name"] = json!(ctf_web);
    ctf["spec"]["ttl"] = json!("1h");
    templates.patch(&ctf_web, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&ctf)).await.unwrap();
    let bad = run
        .labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": &broken},
        "spec": {"pods": [{"name": "app", "image": "registry.example/doesnotexist:1"}]}}));
    templates.patch(&broken, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&bad)).await.unwrap();
    let short_tpl = run
        .labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": &short},
        "spec": {"ttl": "3s", "pods": [{"name": "app", "image": "busybox:1.36"}]}}));
    templates.patch(&short, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&short_tpl)).await.unwrap();

    // The template controller accepts good templates and says why it refuses bad ones.
    wait_for(&templates, &ctf_web, T, |t| {
        t.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Accepted" && c.status == "True"))
    })
    .await;
    let invalid_tpl = run
        .labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": &invalid},
        "spec": {"networks": ["a"], "pods": [{"name": "x", "image": "busybox", "networks": ["b"]}]}}));
    templates.patch(&invalid, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&invalid_tpl)).await.unwrap();
    let t = wait_for(&templates, &invalid, T, |t| t.status.as_ref().is_some_and(|s| !s.conditions.is_empty())).await;
    assert_eq!(
        t.status.unwrap().conditions[0].message,
        "spec.pods[0].networks[0]: network \"b\" is not declared in spec.networks"
    );
    // A template with many problems: its Invalid Event's note is cut to what
    // the API server takes (1024 bytes) rather than refused and lost.
    let pods: Vec<Value> =
        (0..60).map(|i| json!({"name": format!("p{i}"), "image": "busybox", "networks": ["nope"]})).collect();
    let many = run.labelled(
        json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": &very_invalid},
        "spec": {"pods": pods}}),
    );
    templates.patch(&very_invalid, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&many)).await.unwrap();
    let (kind, note) = event(&tc.client, "default", &very_invalid, "Invalid").await;
    assert_eq!(kind, "Warning");
    assert!(note.len() <= 1024 && note.ends_with('…'), "{} bytes: {note}", note.len());

    let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &ns);
    let new = |name: &str, template: &str| -> Instance {
        serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance", "metadata": {"name": name}, "spec": {"template": template}})).unwrap()
    };
    insts.create(&PostParams::default(), &new("web1", &ctf_web)).await.unwrap();
    let i = wait_for(&insts, "web1", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let st = i.status.unwrap();
    assert_eq!(st.pods.len(), 3);
    assert!(st.pods.iter().all(|p| p.ready && p.node.is_some() && p.pod_ip.is_some()));
    assert!(st.expires.is_some() && st.ready.is_some() && st.scheduled.is_some() && st.pulled.is_some());
    let web = st.endpoints.iter().find(|e| e.pod == "web" && e.port == "http").unwrap();
    assert!(web.node_port.is_some_and(|p| (30000..=32767).contains(&p)), "{web:?}");
    assert_eq!(web.cluster_dns.as_deref(), Some(format!("web.web1.{ns}.svc:8080").as_str()));
    // What happened is told as Events on the Instance.
    let (kind, note) = event(&tc.client, &ns, "web1", "Created").await;
    assert_eq!(kind, "Normal");
    assert!(note.contains("web") && note.contains("db"), "{note}");
    assert_eq!(event(&tc.client, &ns, "web1", "Running").await.1, "all 3 pods are ready");

    // A pod deleted by hand is recreated.
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let old_uid = pods.get("web1-db").await.unwrap().metadata.uid;
    pods.delete("web1-db", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_until(T, "web1-db recreated", || async {
        pods.get_opt("web1-db").await.ok().flatten().is_some_and(|p| p.metadata.uid != old_uid)
    })
    .await;
    wait_for(&insts, "web1", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let (kind, note) = event(&tc.client, &ns, "web1", "DriftRepaired").await;
    assert_eq!((kind.as_str(), note.as_str()), ("Normal", "pod(s) db had been deleted; re-created them"));

    // A NetworkPolicy of the tenant deleted by hand comes back, and the Tenant says so.
    let pols: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = Api::namespaced(tc.client.clone(), &ns);
    let tenant_pol = pols
        .list(&ListParams::default().labels("paddock.dev/component=tenant"))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the tenant has NetworkPolicies");
    let pol_name = tenant_pol.metadata.name.clone().unwrap();
    pols.delete(&pol_name, &DeleteParams::default()).await.unwrap();
    wait_until(T, "the tenant policy re-created", || async {
        pols.get_opt(&pol_name).await.ok().flatten().is_some_and(|p| p.metadata.uid != tenant_pol.metadata.uid)
    })
    .await;
    let (_, note) = event(&tc.client, "default", &red, "DriftRepaired").await;
    assert_eq!(note, format!("NetworkPolicy {ns}/{pol_name} had been deleted; re-created it"));

    // maxPerTenant is 1.
    insts.create(&PostParams::default(), &new("web2", &ctf_web)).await.unwrap();
    let i = wait_for(&insts, "web2", T, |i| phase(i).is_some()).await;
    assert_eq!((phase(&i), reason(&i).as_str()), (Some(InstancePhase::Failed), "LimitReached"));
    assert_eq!(event(&tc.client, &ns, "web2", "LimitReached").await.0, "Warning");
    assert!(pods.list(&ListParams::default().labels("paddock.dev/instance=web2")).await.unwrap().items.is_empty());

    // A bad image fails with the image named.
    insts.create(&PostParams::default(), &new("bad", &broken)).await.unwrap();
    let i = wait_for(&insts, "bad", T, |i| reason(i) == "ImagePullFailed").await;
    let msg = i.status.unwrap().conditions[0].message.clone();
    assert!(msg.contains("registry.example/doesnotexist:1"), "{msg}");

    // An unknown template.
    insts.create(&PostParams::default(), &new("ghost", "no-such-template")).await.unwrap();
    wait_for(&insts, "ghost", T, |i| reason(i) == "TemplateInvalid").await;

    // TTL: the instance expires on time and its pods go.
    insts.create(&PostParams::default(), &new("brief", &short)).await.unwrap();
    wait_for(&insts, "brief", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    wait_for(&insts, "brief", T, |i| phase(i) == Some(InstancePhase::Expired)).await;
    wait_until(T, "brief's pods removed", || async {
        pods.list(&ListParams::default().labels("paddock.dev/instance=brief")).await.unwrap().items.is_empty()
    })
    .await;

    // Stopping: deleting the Instance removes what it created. While it is
    // being stopped (held here by a finalizer of the test's own), it no
    // longer counts against maxPerTenant, as the API counts it: a stop and a
    // new start at once (a "restart") start the new one.
    insts.delete("web2", &DeleteParams::default()).await.unwrap();
    wait_gone(&insts, "web2", T).await;
    let hold = json!({"metadata": {"finalizers": [instance::reconcile::FINALIZER, "test.paddock.dev/hold"]}});
    insts.patch("web1", &PatchParams::default(), &Patch::Merge(&hold)).await.unwrap();
    insts.delete("web1", &DeleteParams::default()).await.unwrap();
    insts.create(&PostParams::default(), &new("web3", &ctf_web)).await.unwrap();
    wait_for(&insts, "web3", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    assert!(insts.get("web1").await.unwrap().metadata.deletion_timestamp.is_some(), "web1 is still being stopped");
    wait_until(T, "web1's pods removed", || async {
        pods.list(&ListParams::default().labels("paddock.dev/instance=web1")).await.unwrap().items.is_empty()
    })
    .await;
    let release = json!({"metadata": {"finalizers": null}});
    insts.patch("web1", &PatchParams::default(), &Patch::Merge(&release)).await.unwrap();
    wait_gone(&insts, "web1", T).await;

    // Reconciles sweep their namespace from the watch caches (at most every
    // 10 s): what an instance that no longer exists left there goes when an
    // instance of the namespace is reconciled (here web3, poked by an
    // annotation until the sweep is due).
    let cms: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let left: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "left-config",
        "labels": {"app.kubernetes.io/managed-by": "paddock", "paddock.dev/instance": "vanished-too"}},
        "data": {"a": "b"}}))
    .unwrap();
    cms.create(&PostParams::default(), &left).await.unwrap();
    let mut pokes = 0;
    wait_until(T, "left-config swept", || {
        pokes += 1;
        let poke = json!({"metadata": {"annotations": {"test.paddock.dev/poke": pokes.to_string()}}});
        let (insts, cms) = (insts.clone(), cms.clone());
        async move {
            insts.patch("web3", &PatchParams::default(), &Patch::Merge(&poke)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            cms.get_opt("left-config").await.unwrap().is_none()
        }
    })
    .await;

    // A template in use stays when it is deleted, until its last instance is
    // gone: that instance is still repaired, and a new one is refused.
    templates.delete(&ctf_web, &DeleteParams::default()).await.unwrap();
    let deleting = |t: &Template| {
        t.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Accepted" && c.reason == "Deleting"))
    };
    let t = wait_for(&templates, &ctf_web, T, deleting).await;
    let msg = &t.status.as_ref().unwrap().conditions[0].message;
    assert_eq!(msg, &format!("being deleted; waiting for 1 instance(s) to stop: {ns}/web3"));
    let (kind, note) = event(&tc.client, "default", &ctf_web, "Deleting").await;
    assert_eq!(
        (kind.as_str(), note),
        ("Normal", format!("being deleted; waiting for 1 instance(s) to stop: {ns}/web3"))
    );
    insts.create(&PostParams::default(), &new("web4", &ctf_web)).await.unwrap();
    wait_for(&insts, "web4", T, |i| reason(i) == "TemplateDeleting").await;
    let old_uid = pods.get("web3-db").await.unwrap().metadata.uid;
    pods.delete("web3-db", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_until(T, "web3-db recreated under a deleted template", || async {
        pods.get_opt("web3-db").await.ok().flatten().is_some_and(|p| p.metadata.uid != old_uid)
    })
    .await;
    insts.delete("web3", &DeleteParams::default()).await.unwrap();
    insts.delete("web4", &DeleteParams::default()).await.unwrap();
    wait_gone(&templates, &ctf_web, T).await;

    // Orphan sweep: objects labelled for an instance that does not exist go.
    let orphan: Pod = serde_json::from_value(json!({"metadata": {"name": "left-behind", "labels": {"app.kubernetes.io/managed-by": "paddock", "paddock.dev/instance": "vanished"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let swept = instance::cleanup::sweep_orphans(&tc.client, Some(&ns)).await.unwrap();
    assert_eq!(swept, 1);
    wait_gone(&pods, "left-behind", T).await;

    for n in ["web3", "bad", "ghost", "brief"] {
        let _ = insts.delete(n, &DeleteParams::default()).await;
    }
    tenants.delete(&red, &DeleteParams::default()).await.unwrap();
    wait_gone(&tenants, &red, T).await;
    for n in [&ctf_web, &broken, &short, &invalid, &very_invalid] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_on_kubesim_limits_and_fifty_concurrent_instances() {
    let cfg = kubesim::SimConfig { nodes: kubesim::config::parse_nodes("4").unwrap(), ..Default::default() };
    let tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("uses kubesim's reachability endpoint and node list") else { return };
    install(&tc.client).await;
    let settings = Settings { namespace_prefix: "pc-".into(), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures_stop(rx);
    let h1 = tokio::spawn(tenant::run(
        tenant::Context::new(tc.client.clone(), settings.clone(), Default::default()),
        stop.clone(),
    ));
    let h2 = tokio::spawn(instance::reconcile::run(
        instance::reconcile::Context::new(tc.client.clone(), settings.clone(), Default::default()),
        stop,
    ));

    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let templates: Api<Template> = Api::all(tc.client.clone());
    templates
        .patch("ctf-web", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&example("ctf-web")))
        .await
        .unwrap();
    let small = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "small"},
        "spec": {"maxPerTenant": 5, "ttl": "1h", "maxTtl": "3h", "pods": [{"name": "app", "image": "busybox:1.36", "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}}]}});
    templates.patch("small", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&small)).await.unwrap();
    let huge = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "huge"},
        "spec": {"pods": [{"name": "app", "image": "busybox:1.36", "resources": {"requests": {"cpu": "64"}}}]}});
    templates.patch("huge", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&huge)).await.unwrap();

    let names: Vec<String> = (0..10).map(|i| format!("team-{i}")).collect();
    for n in &names {
        let mut spec = json!({"kind": "Team", "storage": {"enabled": n == "team-0"}});
        if n == "team-9" {
            spec["quota"] = json!({"cpu": "100m"});
        }
        let t: Tenant = serde_json::from_value(
            json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": n}, "spec": spec}),
        )
        .unwrap();
        tenants.create(&PostParams::default(), &t).await.unwrap();
    }
    for n in &names {
        wait_for(&tenants, n, T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
    }
    let new = |name: &str, template: &str| -> Instance {
        serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance", "metadata": {"name": name}, "spec": {"template": template}})).unwrap()
    };
    // 50 instances across 10 tenants, started at once (team-9's quota only fits one of its five).
    let mut creates = Vec::new();
    for n in &names {
        for k in 0..5 {
            let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &format!("pc-{n}"));
            let inst = new(&format!("app-{k}"), "small");
            creates.push(tokio::spawn(async move { insts.create(&PostParams::default(), &inst).await.map(|_| ()) }));
        }
    }
    for c in creates {
        c.await.unwrap().unwrap();
    }
    for n in names.iter().filter(|n| *n != "team-9") {
        let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &format!("pc-{n}"));
        for k in 0..5 {
            wait_for(&insts, &format!("app-{k}"), T, |i| phase(i) == Some(InstancePhase::Running)).await;
        }
    }
    // Over the cpu quota: a clear condition, no pod.
    let q9: Api<Instance> = Api::namespaced(tc.client.clone(), "pc-team-9");
    wait_until(T, "team-9's quota refusals", || async {
        let list = q9.list(&ListParams::default()).await.unwrap().items;
        list.iter().filter(|i| phase(i) == Some(InstancePhase::Running)).count() == 2
            && list.iter().filter(|i| reason(i) == "QuotaExceeded").count() == 3
    })
    .await;
    let refused = q9
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|i| reason(i) == "QuotaExceeded")
        .unwrap();
    let msg = refused.status.unwrap().conditions[0].message.clone();
    assert!(msg.contains("exceeded quota: quota, requested: requests.cpu=50m"), "{msg}");

    // All or nothing: an instance whose second pod is over the quota keeps
    // neither (the first one, created before the refusal, goes again). The
    // pair (100m) fits team-x's quota (125m) on its own, not next to "one".
    let pair = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": "pair"},
        "spec": {"pods": [{"name": "a", "image": "busybox:1.36", "resources": {"requests": {"cpu": "50m"}}},
                          {"name": "b", "image": "busybox:1.36", "resources": {"requests": {"cpu": "50m"}}}]}});
    templates.patch("pair", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&pair)).await.unwrap();
    let t: Tenant = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "team-x"}, "spec": {"kind": "Team", "storage": {"enabled": false}, "quota": {"cpu": "125m"}}}))
    .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    wait_for(&tenants, "team-x", T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
    let qx: Api<Instance> = Api::namespaced(tc.client.clone(), "pc-team-x");
    // The quota's first count must be in before anything is created in its namespace.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::namespaced(tc.client.clone(), "pc-team-x");
    wait_until(T, "team-x's quota counted", || async {
        quotas.get_opt("quota").await.unwrap().is_some_and(|q| q.status.is_some_and(|s| s.used.is_some()))
    })
    .await;
    qx.create(&PostParams::default(), &new("one", "small")).await.unwrap();
    wait_for(&qx, "one", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    qx.create(&PostParams::default(), &new("both", "pair")).await.unwrap();
    let i = wait_for(&qx, "both", T, |i| reason(i) == "QuotaExceeded").await;
    assert_eq!(phase(&i), Some(InstancePhase::Pending));
    let msg = i.status.unwrap().conditions[0].message.clone();
    assert!(msg.contains("exceeded quota: quota, requested: requests.cpu=50m, used: requests.cpu=100m"), "{msg}");
    let pods_x: Api<Pod> = Api::namespaced(tc.client.clone(), "pc-team-x");
    let both = ListParams::default().labels("paddock.dev/instance=both");
    wait_until(T, "no pod of the refused instance is left", || async {
        pods_x.list(&both).await.unwrap().items.iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    // ...and it waits before it tries again: its pods' deletions do not start
    // the next try at once (which would create and delete them in a loop).
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let live = pods_x.list(&both).await.unwrap().items;
        assert!(live.iter().all(|p| p.metadata.deletion_timestamp.is_some()), "a refused instance came back at once");
    }
    // More than the whole quota: said as such, and no pod is tried.
    qx.create(&PostParams::default(), &new("whale", "huge")).await.unwrap();
    let i = wait_for(&qx, "whale", T, |i| reason(i) == "QuotaExceeded").await;
    let msg = i.status.unwrap().conditions[0].message.clone();
    assert!(msg.contains("it needs cpu 64, more than tenant \"team-x\"'s whole quota (spec.quota.cpu 125m)"), "{msg}");
    let whale = ListParams::default().labels("paddock.dev/instance=whale");
    assert!(pods_x.list(&whale).await.unwrap().items.is_empty());

    // Unschedulable: the scheduler's message reaches the instance.
    let i0: Api<Instance> = Api::namespaced(tc.client.clone(), "pc-team-0");
    i0.create(&PostParams::default(), &new("big", "huge")).await.unwrap();
    let i = wait_for(&i0, "big", T, |i| reason(i) == "Unschedulable").await;
    assert_eq!(phase(&i), Some(InstancePhase::Scheduling));
    assert!(i.status.unwrap().conditions[0].message.contains("0/4 nodes are available: 4 Insufficient cpu."));

    // Renew: a longer ttl within maxTtl moves the expiry.
    let before = i0.get("app-0").await.unwrap().status.unwrap().expires.unwrap().0;
    i0.patch("app-0", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ttl": "2h"}}))).await.unwrap();
    let after = wait_for(&i0, "app-0", T, |i| {
        i.status.as_ref().and_then(|s| s.expires.as_ref()).is_some_and(|e| e.0 != before)
    })
    .await;
    assert_eq!(after.status.unwrap().expires.unwrap().0.duration_since(before).as_secs(), 3600);

    // Isolation as a packet would see it (kubesim's reachability endpoint over the live policies).
    i0.create(&PostParams::default(), &new("ctf", "ctf-web")).await.unwrap();
    wait_for(&i0, "ctf", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let i1: Api<Instance> = Api::namespaced(tc.client.clone(), "pc-team-1");
    i1.create(&PostParams::default(), &new("ctf", "ctf-web")).await.unwrap();
    wait_for(&i1, "ctf", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let reach = |from: &str, to: &str, port: u16| {
        let client = tc.client.clone();
        let uri = format!("/sim/v1/reachability?from={from}&to={to}&port={port}&protocol=TCP");
        async move {
            let req = http::Request::get(uri).body(Vec::new()).unwrap();
            let v: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
            v["allowed"].as_bool().unwrap()
        }
    };
    assert!(reach("pc-team-0/ctf-web", "pc-team-0/ctf-db", 5432).await);
    assert!(!reach("pc-team-0/ctf-web", "pc-team-0/ctf-db", 22).await);
    assert!(!reach("pc-team-0/ctf-helper", "pc-team-0/ctf-db", 5432).await);
    assert!(!reach("pc-team-1/ctf-web", "pc-team-0/ctf-db", 5432).await);
    assert!(!reach("pc-team-1/ctf-web", "pc-team-0/ctf-web", 8080).await);
    assert!(
        !reach("pc-team-0/app-0-app", "pc-team-0/ctf-web", 8080).await,
        "another instance of the tenant is not on its networks"
    );

    let _ = tx.send(());
    let _ = tokio::time::timeout(T, h1).await;
    let _ = tokio::time::timeout(T, h2).await;
    tc.finish().await;
}

/// All the reconcilers on `tc` for a run of their own ([`Run`], tagged
/// `tag`) and a Ready tenant (the run's `tenant`) without storage: its
/// namespace, the sender and task that stop the reconcilers, and the run.
async fn reconcilers_and_tenant(
    tc: &mut TestCluster,
    tag: &str,
    tenant: &str,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>, Run) {
    install(&tc.client).await;
    let run = Run::new(tag);
    run.own(tc);
    let tenant = &run.name(tenant);
    let settings = run.settings();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ctl = tokio::spawn(controller::install::reconcilers(
        tc.client.clone(),
        settings.clone(),
        Default::default(),
        futures_stop(rx),
    ));
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant =
        serde_json::from_value(run.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": tenant}, "spec": {"kind": "Team", "storage": {"enabled": false}}})))
        .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    wait_for(&tenants, tenant, T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
    (format!("{}{tenant}", settings.namespace_prefix), tx, ctl, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcilers_share_one_watch_of_tenants_and_one_of_their_namespaces() {
    let mut tc = TestCluster::start().await;
    if tc.sim("counts the API server's open watches").is_none() {
        return;
    }
    let (ns, tx, ctl, run) = reconcilers_and_tenant(&mut tc, "ps", "shared").await;
    let Some(sim) = tc.sim("counts the API server's open watches") else { return };
    let templates: Api<Template> = Api::all(tc.client.clone());
    let ctf_web = run.name("ctf-web");
    let mut tpl = run.labelled(example("ctf-web"));
    tpl["metadata"]["name"] = json!(ctf_web);
    templates.patch(&ctf_web, &PatchParams::apply("t").force(), &Patch::Apply(&tpl)).await.unwrap();
    // The instance controller reads the tenant and its namespace from the shared caches.
    let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &ns);
    let i: Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": "web"}, "spec": {"template": ctf_web}}))
    .unwrap();
    insts.create(&PostParams::default(), &i).await.unwrap();
    wait_for(&insts, "web", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    // wait_for's own watches have ended; what is open is the reconcilers'.
    wait_until(T, "the test's own watches to close", || async { sim.open_watches("instances") <= 1 }).await;
    assert_eq!(sim.open_watches("tenants"), 1, "one watch of Tenants for the tenant and instance controllers");
    assert_eq!(sim.open_watches("namespaces"), 1, "one watch of tenant namespaces");
    let _ = tx.send(());
    let _ = tokio::time::timeout(T, ctl).await;
    tc.finish().await;
}

/// A write the API server refuses (here a LimitRange of the cluster's admin
/// that the instance's pods do not meet) is said on the instance — its Ready
/// condition, reason ApiRefused, and a Warning Event — not only in the
/// controller's log; once the obstacle goes, the instance starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_api_server_refuses_shows_on_the_instance() {
    let mut tc = TestCluster::start().await;
    let (ns, tx, ctl, run) = reconcilers_and_tenant(&mut tc, "pr", "capped").await;
    let templates: Api<Template> = Api::all(tc.client.clone());
    let small = run.name("small-app");
    let tpl = run
        .labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": small},
        "spec": {"pods": [{"name": "app", "image": "busybox:1.36"}]}}));
    templates.patch(&small, &PatchParams::apply("t").force(), &Patch::Apply(&tpl)).await.unwrap();
    // Every container must ask for a whole cpu: the pod's 100m is refused (403).
    let limits: Api<k8s_openapi::api::core::v1::LimitRange> = Api::namespaced(tc.client.clone(), &ns);
    let cap: k8s_openapi::api::core::v1::LimitRange = serde_json::from_value(json!({"metadata": {"name": "admin-cap"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "1"}}]}}))
    .unwrap();
    limits.create(&PostParams::default(), &cap).await.unwrap();
    let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &ns);
    let i: Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": "app"}, "spec": {"template": small}}))
    .unwrap();
    insts.create(&PostParams::default(), &i).await.unwrap();
    let stuck = wait_for(&insts, "app", T, |i| reason(i) == "ApiRefused").await;
    let st = stuck.status.unwrap();
    assert_eq!(st.phase, Some(InstancePhase::Pending));
    let msg = &st.conditions[0].message;
    assert!(msg.contains("minimum cpu usage per Container is 1"), "{msg}");
    let (kind, note) = event(&tc.client, &ns, "app", "ApiRefused").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("minimum cpu usage"), "{note}");
    // The obstacle goes: the next try (after a short back-off) starts it.
    limits.delete("admin-cap", &DeleteParams::default()).await.unwrap();
    wait_for(&insts, "app", T, |i| phase(i) == Some(InstancePhase::Running)).await;
    let _ = tx.send(());
    let _ = tokio::time::timeout(T, ctl).await;
    tc.finish().await;
}
