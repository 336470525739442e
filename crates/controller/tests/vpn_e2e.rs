//! The team VPN end to end through the tenant and instance controllers on
//! kubesim: the server lands on a vpn/shared node, its keys are WireGuard
//! keys, it reaches exactly the tenant's teamnet pods on their ports (proven
//! by kubesim's reachability endpoint over the live policies), a rotation
//! replaces the server, and disabling it removes everything.

use controller::config::Settings;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_gone, wait_until};
use kubesim::{SimConfig, config};
use resources::{Instance, InstancePhase, Template, Tenant};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn example(name: &str) -> Value {
    let path = format!("{}/../../examples/templates/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vpn_reaches_exactly_the_teamnet() {
    let cfg = SimConfig {
        nodes: config::parse_nodes(
            "task-1,cpu=16,memory=64Gi,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
             vpn-1,cpu=2,memory=4Gi,label=paddock.dev/node-role=vpn,taint=paddock.dev/node-role=vpn:NoSchedule,sysctl=net.ipv4.ip_forward",
        )
        .unwrap(),
        ..SimConfig::default()
    };
    let tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("uses kubesim's node list and reachability endpoint") else { return };
    controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
    let settings =
        Settings { namespace_prefix: "pv-".into(), vpn_endpoint: Some("vpn.example.org".into()), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        let _ = rx.await;
    }));
    let ctl =
        tokio::spawn(controller::install::reconcilers(tc.client.clone(), settings.clone(), Default::default(), stop));

    let templates: Api<Template> = Api::all(tc.client.clone());
    templates.patch("ctf-web", &PatchParams::apply("t").force(), &Patch::Apply(&example("ctf-web"))).await.unwrap();
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    for (name, vpn) in [("red", true), ("blue", false)] {
        let t: Tenant = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name}, "spec": {"kind": "Team", "storage": {"enabled": false},
            "egress": {"internet": true}, "vpn": {"enabled": vpn, "clients": 3}}}))
        .unwrap();
        tenants.create(&PostParams::default(), &t).await.unwrap();
        let insts: Api<Instance> = Api::namespaced(tc.client.clone(), &format!("pv-{name}"));
        wait_for(&tenants, name, T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
        let i: Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
            "metadata": {"name": "web"}, "spec": {"template": "ctf-web"}}))
        .unwrap();
        insts.create(&PostParams::default(), &i).await.unwrap();
        wait_for(&insts, "web", T, |i| i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)).await;
    }
    let red = wait_for(&tenants, "red", T, |t| {
        t.status.as_ref().and_then(|s| s.vpn.as_ref()).is_some_and(|v| v.ready && v.endpoint.is_some())
    })
    .await;
    let st = red.status.unwrap().vpn.unwrap();
    assert_eq!(st.clients, 3);
    assert!(st.address_pool.as_deref().unwrap().starts_with("10.200."), "{st:?}");
    assert!(st.endpoint.as_deref().unwrap().starts_with("vpn.example.org:3"), "{st:?}");

    // The server: on the vpn node, NET_ADMIN only, keys that are WireGuard keys.
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), "pv-red");
    let vpn_pod = pods.get("vpn").await.unwrap();
    assert_eq!(vpn_pod.spec.as_ref().unwrap().node_name.as_deref(), Some("vpn-1"));
    let caps = vpn_pod.spec.as_ref().unwrap().containers[0].security_context.clone().unwrap().capabilities.unwrap();
    assert_eq!(caps.add.unwrap(), ["NET_ADMIN"]);
    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), "pv-red");
    let keys = controller::tenant::vpn::Keys::from_secret(&secrets.get("vpn").await.unwrap()).unwrap();
    assert_eq!(keys.clients.len(), 3);
    assert_eq!(Some(keys.server.public().to_base64()), st.public_key);
    let svc = Api::<Service>::namespaced(tc.client.clone(), "pv-red").get("vpn").await.unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].protocol.as_deref(), Some("UDP"));

    // What the VPN reaches, as a packet would see it.
    let reach = |from: &str, to: &str, port: u16, proto: &str| {
        let client = tc.client.clone();
        let uri = format!("/sim/v1/reachability?from={from}&to={to}&port={port}&protocol={proto}");
        async move {
            let req = http::Request::get(uri).body(Vec::new()).unwrap();
            let v: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
            v["allowed"].as_bool().unwrap_or_else(|| panic!("{v}"))
        }
    };
    assert!(reach("pv-red/vpn", "pv-red/web-web", 8080, "TCP").await, "teamnet pod on its port");
    assert!(!reach("pv-red/vpn", "pv-red/web-web", 22, "TCP").await, "not on other ports");
    assert!(!reach("pv-red/vpn", "pv-red/web-db", 5432, "TCP").await, "not the tenant's backend network");
    assert!(!reach("pv-red/vpn", "pv-blue/web-web", 8080, "TCP").await, "not another tenant");
    assert!(!reach("pv-blue/web-web", "pv-red/vpn", 51820, "UDP").await, "other tenants' pods cannot use it");
    // Nor Paddock's own namespace.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(tc.client.clone());
    ns.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "pv-system"}})).unwrap())
        .await
        .unwrap();
    let sys: Api<Pod> = Api::namespaced(tc.client.clone(), "pv-system");
    let api_pod: Pod = serde_json::from_value(json!({"metadata": {"name": "api", "labels": {"app": "paddock"}},
        "spec": {"tolerations": [{"key": "paddock.dev/node-role", "operator": "Exists"}],
            "containers": [{"name": "api", "image": "paddock:1", "ports": [{"containerPort": 8080}]}]}}))
    .unwrap();
    sys.create(&PostParams::default(), &api_pod).await.unwrap();
    wait_for(&sys, "api", T, |p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()).await;
    assert!(!reach("pv-red/vpn", "pv-system/api", 8080, "TCP").await, "not the system namespace");
    // The tenant's internet egress does not apply to the VPN pod.
    let egress: Api<NetworkPolicy> = Api::namespaced(tc.client.clone(), "pv-red");
    let internet = egress.get("allow-internet").await.unwrap();
    assert!(serde_json::to_string(&internet.spec.unwrap().pod_selector).unwrap().contains("NotIn"));

    // Rotation: new server key → new config → the pod is replaced.
    let old_uid = vpn_pod.metadata.uid.clone();
    secrets
        .patch(
            "vpn",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"server.key": vpn::Key::generate().to_base64()}})),
        )
        .await
        .unwrap();
    wait_until(T, "the VPN pod is replaced", || async {
        pods.get_opt("vpn").await.unwrap().is_some_and(|p| p.metadata.uid != old_uid)
    })
    .await;
    let red = wait_for(&tenants, "red", T, |t| {
        t.status.as_ref().and_then(|s| s.vpn.as_ref()).and_then(|v| v.public_key.clone()) != st.public_key
    })
    .await;
    assert!(red.status.unwrap().vpn.unwrap().public_key.is_some());

    // Disabled: everything goes.
    tenants
        .patch("red", &PatchParams::default(), &Patch::Merge(json!({"spec": {"vpn": {"enabled": false}}})))
        .await
        .unwrap();
    wait_gone(&pods, "vpn", T).await;
    wait_gone(&secrets, "vpn", T).await;
    wait_gone(&egress, "vpn-egress", T).await;
    wait_for(&tenants, "red", T, |t| t.status.as_ref().is_some_and(|s| s.vpn.is_none())).await;
    let _ = tx.send(());
    let _ = ctl.await;
    // kubesim checks no permissions: every request of the run must be one
    // Paddock's shipped RBAC allows.
    assert_eq!(controller::rbac::not_allowed(&tc.access()), Vec::<String>::new(), "outside Paddock's RBAC");
    tc.finish().await;
}

/// A VPN node whose kubelet does not allow `net.ipv4.ip_forward` (upstream's
/// default) refuses the VPN pod: the tenant says so (Degraded, the kubelet's
/// reason and message, and what to allow), instead of Ready with a VPN that
/// never comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpn_pod_the_kubelet_refuses_shows_on_the_tenant() {
    let cfg = SimConfig {
        nodes: config::parse_nodes(
            "task-1,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
             vpn-1,label=paddock.dev/node-role=vpn,taint=paddock.dev/node-role=vpn:NoSchedule",
        )
        .unwrap(),
        ..SimConfig::default()
    };
    let tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("needs a node whose kubelet refuses the sysctl") else { return };
    controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
    let settings =
        Settings { namespace_prefix: "pq-".into(), vpn_endpoint: Some("vpn.test".into()), ..Default::default() };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
        let _ = rx.await;
    }));
    let ctl = tokio::spawn(controller::install::reconcilers(tc.client.clone(), settings, Default::default(), stop));
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "green"}, "spec": {"kind": "Team", "storage": {"enabled": false},
        "vpn": {"enabled": true, "clients": 1}}}))
    .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, "green", T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Degraded"))
        .await;
    let st = t.status.unwrap();
    let ready = &st.conditions[0];
    assert_eq!((ready.type_.as_str(), ready.reason.as_str()), ("Ready", "SysctlForbidden"), "{st:?}");
    assert!(
        ready.message.contains(r#"Pod was rejected: forbidden sysctl: "net.ipv4.ip_forward" not allowlisted"#)
            && ready.message.contains("--allowed-unsafe-sysctls=net.ipv4.ip_forward"),
        "{}",
        ready.message
    );
    let vpn = st.vpn.unwrap();
    assert!(!vpn.ready && vpn.failure.is_some_and(|f| f.reason == "SysctlForbidden"));
    // The pod as the kubelet left it.
    let pod = Api::<Pod>::namespaced(tc.client.clone(), "pq-green").get("vpn").await.unwrap();
    let ps = pod.status.unwrap();
    assert_eq!((ps.phase.as_deref(), ps.reason.as_deref()), (Some("Failed"), Some("SysctlForbidden")));
    let _ = tx.send(());
    let _ = tokio::time::timeout(T, ctl).await;
    tc.finish().await;
}
