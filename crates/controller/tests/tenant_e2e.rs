//! The tenant reconciler end to end, through the real controller, on kubesim
//! (or a real cluster with PADDOCK_TEST_KUBECONFIG).

use controller::config::Settings;
use controller::noderoles::{Workload, placement};
use controller::tenant::{self, Context};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::conditions;
use kubesim::testing::{TestCluster, wait_for, wait_gone};
use kubesim::{SimConfig, config};
use resources::Tenant;
use serde_json::json;
use std::time::Duration;

mod common;
use common::Run;

const T: Duration = Duration::from_secs(30);

/// The Tenant CRD as this server's version takes it (`paddock crds` does the same).
async fn install_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let version = resources::kubernetes::Version::of_server(&client.apiserver_version().await.unwrap()).unwrap();
    let crd = resources::kubernetes::crds_for(version)
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("tenants.paddock.dev"))
        .unwrap();
    crds.patch("tenants.paddock.dev", &PatchParams::apply("paddock-test").force(), &Patch::Apply(crd)).await.unwrap();
    let est = kube::runtime::wait::await_condition(crds, "tenants.paddock.dev", conditions::is_crd_established());
    tokio::time::timeout(T, est).await.unwrap().unwrap();
}

fn phase(t: &Tenant) -> &str {
    t.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn ready_reason(t: &Tenant) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_lifecycle() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let (tc, settings, running, run) = with_controller("pt").await;
    let a = run.name("team-a");

    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant = serde_json::from_value(
        run.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": a},
        "spec": {"kind": "Team", "quota": {"pods": 10, "cpu": "2"}, "storage": {"size": "1Gi"}}})),
    )
    .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, &a, T, |t| phase(t) == "Ready").await;
    let ns = t.status.unwrap().namespace.unwrap();
    assert_eq!(ns, format!("{}{a}", settings.namespace_prefix));

    let pols: Api<NetworkPolicy> = Api::namespaced(tc.client.clone(), &ns);
    assert!(pols.get("default-deny").await.is_ok());
    assert!(pols.get("allow-dns").await.is_ok());
    let quotas: Api<ResourceQuota> = Api::namespaced(tc.client.clone(), &ns);
    assert_eq!(quotas.get("quota").await.unwrap().spec.unwrap().hard.unwrap()["pods"].0, "10");
    assert!(Api::<LimitRange>::namespaced(tc.client.clone(), &ns).get("defaults").await.is_ok());
    let sa = Api::<ServiceAccount>::namespaced(tc.client.clone(), &ns).get("tenant").await.unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));

    // Editing the quota: the ResourceQuota follows.
    tenants.patch(&a, &PatchParams::default(), &Patch::Merge(json!({"spec": {"quota": {"pods": 3}}}))).await.unwrap();
    wait_for(&quotas, "quota", T, |q| {
        q.spec.as_ref().and_then(|s| s.hard.as_ref()).is_some_and(|h| h["pods"].0 == "3")
    })
    .await;

    // Drift: a policy deleted by hand comes back.
    pols.delete("default-deny", &DeleteParams::default()).await.unwrap();
    wait_for(&pols, "default-deny", T, |_| true).await;
    // ...and one edited by hand is put back.
    pols.patch("allow-dns", &PatchParams::default(), &Patch::Merge(json!({"spec": {"egress": [{}]}}))).await.unwrap();
    wait_for(&pols, "allow-dns", T, |p| serde_json::to_value(p).unwrap()["spec"]["egress"][0].get("to").is_some())
        .await;

    // Growing storage expands the claim.
    tenants
        .patch(&a, &PatchParams::default(), &Patch::Merge(json!({"spec": {"storage": {"size": "2Gi"}}})))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(tc.client.clone(), &ns);
    wait_for(&pvcs, "storage", T, |p| {
        p.status.as_ref().and_then(|s| s.capacity.as_ref()).is_some_and(|c| c["storage"].0 == "2Gi")
    })
    .await;
    wait_for(&tenants, &a, T, |t| t.status.as_ref().and_then(|s| s.storage_capacity.as_deref()) == Some("2Gi")).await;

    // Shrinking is refused with the reason: by the CRD's rule where the
    // server compiles it (1.29+), else by the reconciler.
    let info = tc.client.apiserver_version().await.unwrap();
    let version = resources::kubernetes::Version::of_server(&info).unwrap();
    let (pp, smaller) = (PatchParams::default(), Patch::Merge(json!({"spec": {"storage": {"size": "1Gi"}}})));
    let shrink = tenants.patch(&a, &pp, &smaller);
    if resources::kubernetes::compiles("quantity(self)", version) {
        match shrink.await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{}", e.message);
                assert!(e.message.contains("spec.storage.size"), "{}", e.message);
                assert!(e.message.contains("storage size may grow but not shrink"), "{}", e.message);
            }
            other => panic!("Kubernetes {version} refuses a shrink with the CRD's rule, got {other:?}"),
        }
    } else {
        shrink.await.unwrap();
        let t = wait_for(&tenants, &a, T, |t| ready_reason(t) == "StorageShrinkRefused").await;
        assert_eq!(phase(&t), "Failed");
        let msg = t.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap().message;
        assert!(msg.contains("can not be less than"), "{msg}");
    }
    tenants
        .patch(&a, &PatchParams::default(), &Patch::Merge(json!({"spec": {"storage": {"size": "2Gi"}}})))
        .await
        .unwrap();
    wait_for(&tenants, &a, T, |t| phase(t) == "Ready").await;

    // A bad spec names the field.
    tenants
        .patch(
            &a,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"quota": {"cpu": "lots"}, "groups": ["nobody"]}})),
        )
        .await
        .unwrap();
    let t = wait_for(&tenants, &a, T, |t| ready_reason(t) == "InvalidSpec").await;
    let msg = t.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap().message;
    assert!(msg.contains("spec.quota.cpu: \"lots\" is not a quantity"), "{msg}");
    tenants
        .patch(&a, &PatchParams::default(), &Patch::Merge(json!({"spec": {"quota": {"cpu": "2"}, "groups": []}})))
        .await
        .unwrap();
    wait_for(&tenants, &a, T, |t| phase(t) == "Ready").await;

    // Deletion: the namespace goes, the volume stays.
    let pv = pvcs.get("storage").await.unwrap().spec.unwrap().volume_name.unwrap();
    tenants.delete(&a, &DeleteParams::default()).await.unwrap();
    wait_gone(&tenants, &a, T).await;
    let nss: Api<Namespace> = Api::all(tc.client.clone());
    assert!(nss.get_opt(&ns).await.unwrap().is_none());
    let pvs: Api<PersistentVolume> = Api::all(tc.client.clone());
    let kept = pvs.get(&pv).await.expect("the retained volume is kept");
    assert_eq!(kept.spec.unwrap().persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
    assert_eq!(kept.metadata.labels.unwrap()["paddock.dev/tenant"], a);
    // The retained volume is the test's own: it goes too, on a shared cluster as well.
    pvs.delete(&pv, &DeleteParams::default()).await.ok();
    running.stop(tc).await;
}

fn quota_condition(t: &Tenant) -> (String, String) {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "QuotaWithinUsage"))
        .map(|c| (c.status.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// The controller ignores a quota's usage changes but for the ones its status
/// shows: usage going over the quota, and back within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_below_usage_shows_on_the_tenant_until_usage_fits_again() {
    let (tc, _, running, run) = with_controller("pq").await;
    let q = run.name("team-q");
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant =
        serde_json::from_value(run.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": q},
        "spec": {"kind": "Team", "quota": {"pods": 3}, "storage": {"enabled": false}}})))
        .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, &q, T, |t| phase(t) == "Ready").await;
    assert_eq!(quota_condition(&t).0, "True");
    let ns = t.status.unwrap().namespace.unwrap();
    // As on any cluster, pods are admitted once the namespace's default
    // service account exists and the quota controller has counted the quota
    // (until then admission answers "status unknown for quota").
    let accounts: Api<ServiceAccount> = Api::namespaced(tc.client.clone(), &ns);
    wait_for(&accounts, "default", T, |_| true).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(tc.client.clone(), &ns);
    wait_for(&quotas, "quota", T, |q| q.status.as_ref().and_then(|s| s.used.as_ref()).is_some()).await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    for name in ["a", "b"] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    wait_for(&quotas, "quota", T, |q| {
        q.status.as_ref().and_then(|s| s.used.as_ref()).is_some_and(|u| u.get("pods").is_some_and(|p| p.0 == "2"))
    })
    .await;
    // The quota lowered below what runs: the tenant says so.
    tenants.patch(&q, &PatchParams::default(), &Patch::Merge(json!({"spec": {"quota": {"pods": 1}}}))).await.unwrap();
    let t = wait_for(&tenants, &q, T, |t| quota_condition(t).0 == "False").await;
    assert!(quota_condition(&t).1.contains("pods: 2 in use, quota 1"), "{:?}", quota_condition(&t));
    // A pod goes: usage fits again, and only the usage changed.
    pods.delete("b", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_for(&tenants, &q, T, |t| quota_condition(t).0 == "True").await;

    tenants.delete(&q, &DeleteParams::default()).await.unwrap();
    wait_gone(&tenants, &q, T).await;
    running.stop(tc).await;
}

/// The tenant controller running in a test, until [`Running::stop`].
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

/// The test cluster with the Tenant CRD, and the tenant controller running
/// on it for a run of its own ([`Run`]: its namespaces, names and scope).
async fn with_controller(prefix: &str) -> (TestCluster, Settings, Running, Run) {
    let mut tc = TestCluster::start().await;
    install_crd(&tc.client).await;
    let run = Run::new(prefix);
    run.own(&mut tc);
    let settings = run.settings();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ctx = Context::new(tc.client.clone(), settings.clone(), Default::default());
    let handle = tokio::spawn(tenant::run(ctx, async move {
        let _ = stopped.await;
    }));
    (tc, settings, Running { stop, handle }, run)
}

impl Running {
    /// Stops the controller, then the cluster.
    async fn stop(self, tc: TestCluster) {
        self.stop.send(()).ok();
        let _ = tokio::time::timeout(T, self.handle).await;
        // kubesim checks no permissions: every request of the run must be one
        // Paddock's shipped RBAC allows.
        assert_eq!(controller::rbac::not_allowed(&tc.access()), Vec::<String>::new(), "outside Paddock's RBAC");
        tc.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_pods_land_only_on_task_or_shared_nodes() {
    let cfg = SimConfig {
        nodes: config::parse_nodes(
            "task-1,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
         vpn-1,label=paddock.dev/node-role=vpn,taint=paddock.dev/node-role=vpn:NoSchedule,sysctl=net.ipv4.ip_forward;\
         shared-1,label=paddock.dev/node-role=shared,taint=paddock.dev/node-role=shared:PreferNoSchedule,sysctl=net.ipv4.ip_forward;\
         other-1;unmanaged-1,label=paddock.dev/node-role=unmanaged,taint=paddock.dev/node-role=unmanaged:NoExecute",
        )
        .unwrap(),
        ..SimConfig::default()
    };
    let mut tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("needs kubesim's node list") else { return };
    let ns = tc.namespace("roles").await;
    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    for (workload, allowed) in [(Workload::Task, ["task-1", "shared-1"]), (Workload::Vpn, ["vpn-1", "shared-1"])] {
        let p = placement(workload, true, false);
        for i in 0..6 {
            let name = format!("{workload:?}-{i}").to_lowercase();
            let mut pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}]}})).unwrap();
            let spec = pod.spec.as_mut().unwrap();
            spec.tolerations = Some(p.tolerations.clone());
            spec.affinity = p.affinity.clone();
            pods.create(&PostParams::default(), &pod).await.unwrap();
            let placed =
                wait_for(&pods, &name, T, |p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).await;
            let node = placed.spec.unwrap().node_name.unwrap();
            assert!(allowed.contains(&node.as_str()), "{name} landed on {node}");
        }
    }
    tc.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_mount_their_groups_shared_volume() {
    let (tc, settings, running, run) = with_controller("pg").await;
    let (lab, alice) = (run.name("lab"), run.name("alice"));
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let mk = |v: serde_json::Value| -> Tenant { serde_json::from_value(run.labelled(v)).unwrap() };
    tenants
        .create(
            &PostParams::default(),
            &mk(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": lab},
        "spec": {"kind": "Group", "storage": {"size": "5Gi", "retainOnDelete": false}}})),
        )
        .await
        .unwrap();
    tenants
        .create(
            &PostParams::default(),
            &mk(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": alice},
        "spec": {"kind": "User", "groups": [lab], "storage": {"enabled": false}}})),
        )
        .await
        .unwrap();
    wait_for(&tenants, &alice, T, |t| phase(t) == "Ready").await;
    let member_ns = format!("{}{alice}", settings.namespace_prefix);
    let group_ns = format!("{}{lab}", settings.namespace_prefix);
    let group_pvc = resources::vocabulary::group_claim(&lab);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(tc.client.clone(), &member_ns);
    let claim =
        wait_for(&claims, &group_pvc, T, |c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")).await;
    // Through a volume named with the installation's prefix (a cluster-scoped name).
    let member_pv = controller::tenant::groups::volume_name(&settings.namespace_prefix, &alice, &lab);
    assert_eq!(claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()), Some(member_pv.as_str()));
    let pvs: Api<PersistentVolume> = Api::all(tc.client.clone());
    let mine = pvs.get(&claim.spec.unwrap().volume_name.unwrap()).await.unwrap().spec.unwrap();
    let group_claim =
        Api::<PersistentVolumeClaim>::namespaced(tc.client.clone(), &group_ns).get("shared").await.unwrap();
    let theirs = pvs.get(&group_claim.spec.unwrap().volume_name.unwrap()).await.unwrap().spec.unwrap();
    assert_eq!(
        serde_json::to_value(&mine.host_path).unwrap(),
        serde_json::to_value(&theirs.host_path).unwrap(),
        "same backing volume"
    );
    assert!(
        mine.csi.is_none() || serde_json::to_value(&mine.csi).unwrap() == serde_json::to_value(&theirs.csi).unwrap()
    );
    assert_eq!(mine.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
    // Leaving the group removes the member's claim and volume object, not the group's data.
    tenants.patch(&alice, &PatchParams::default(), &Patch::Merge(json!({"spec": {"groups": []}}))).await.unwrap();
    kubesim::testing::wait_gone(&claims, &group_pvc, T).await;
    kubesim::testing::wait_gone(&pvs, &member_pv, T).await;
    assert!(Api::<PersistentVolumeClaim>::namespaced(tc.client.clone(), &group_ns).get("shared").await.is_ok());
    for n in [&alice, &lab] {
        tenants.delete(n, &DeleteParams::default()).await.unwrap();
        wait_gone(&tenants, n, T).await;
    }
    running.stop(tc).await;
}

/// A child the API server refuses (here the VPN pod, over the pod quota)
/// shows on the tenant: phase Degraded, the API server's reason and message
/// (issue 30.1, 28.2), instead of Ready with the refusal only in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_child_shows_on_the_tenant() {
    let (tc, _, running, run) = with_controller("pr").await;
    let r = run.name("team-r");
    let tenants: Api<Tenant> = Api::all(tc.client.clone());
    let t: Tenant =
        serde_json::from_value(run.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": r},
        "spec": {"kind": "Team", "quota": {"pods": 0}, "storage": {"enabled": false},
            "vpn": {"enabled": true, "clients": 2}}})))
        .unwrap();
    tenants.create(&PostParams::default(), &t).await.unwrap();
    let t = wait_for(&tenants, &r, T, |t| phase(t) == "Degraded").await;
    let ready = t.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap().clone();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Forbidden"), "{ready:?}");
    assert!(ready.message.contains("exceeded quota"), "{}", ready.message);
    // Room in the quota: the VPN pod is created and the tenant recovers.
    tenants.patch(&r, &PatchParams::default(), &Patch::Merge(json!({"spec": {"quota": {"pods": 5}}}))).await.unwrap();
    wait_for(&tenants, &r, T, |t| phase(t) == "Ready").await;
    tenants.delete(&r, &DeleteParams::default()).await.unwrap();
    wait_gone(&tenants, &r, T).await;
    running.stop(tc).await;
}
