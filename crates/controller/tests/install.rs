//! Installing Paddock: a cluster without its CRDs or its system namespace is
//! said so, with the fix.

use kubesim::testing::TestCluster;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_are_named_with_how_to_install_them() {
    let tc = TestCluster::start().await;
    let Some(_) = tc.sim("needs a cluster without Paddock's CRDs") else { return };
    let why = controller::install::check_crds(&tc.client).await.unwrap_err();
    for name in ["tenants.paddock.dev", "templates.paddock.dev", "instances.paddock.dev", "paddock crds"] {
        assert!(why.contains(name), "{why}");
    }
    controller::install::crds(&tc.client, "paddock-test", Duration::from_secs(30)).await.unwrap();
    controller::install::check_crds(&tc.client).await.unwrap();
    tc.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_system_namespace_is_named_with_how_to_make_it() {
    let tc = TestCluster::start().await;
    let ns = format!("paddock-system-{}", std::process::id());
    let why = controller::install::check_system_namespace(&tc.client, &ns).await.unwrap_err();
    assert!(why.contains(&format!("kubectl create namespace {ns}")) && why.contains("--system-namespace"), "{why}");
    controller::install::namespace(&tc.client, &ns, "paddock-test").await.unwrap();
    controller::install::check_system_namespace(&tc.client, &ns).await.unwrap();
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(tc.client.clone())
        .delete(&ns, &Default::default())
        .await;
    tc.finish().await;
}
