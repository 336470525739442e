//! Two installations of Paddock on one cluster (`--scope`), as several
//! teams' platforms, or several test runs, share one: each sees, reconciles
//! and changes only its own Tenants, Templates and instances. Over kubesim,
//! or a real cluster with PADDOCK_TEST_KUBECONFIG.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kubesim::testing::{TestCluster, wait_until};
use serde_json::json;

fn scoped(value: String) -> impl FnOnce(&mut controller::config::Settings) {
    move |s| s.scope = Some(("paddock.dev/installation".to_string(), value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_share_a_cluster_and_each_keeps_to_its_own() {
    let run = format!("{}{}", std::process::id(), rand_suffix());
    let a = Env::start_with(scoped(format!("a{run}"))).await;
    let b = Env::start_on(TestCluster::connect(a.tc.config.clone()), scoped(format!("b{run}"))).await;
    // Each installation's API lists only its own tenants and templates, and
    // does not show, change or take over the other's.
    let (_, tenants) = a.call("GET", "/v1/tenants", Some(ADMIN), None).await;
    let names: Vec<&str> = tenants["items"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&a.alpha.as_str()) && !names.contains(&b.alpha.as_str()), "{names:?}");
    let (_, templates) = b.call("GET", "/v1/templates", Some(ADMIN), None).await;
    let names: Vec<&str> = templates["items"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, [b.template.as_str()], "b sees its own template only");
    assert_eq!(a.call("GET", &format!("/v1/tenants/{}", b.alpha), Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        a.call("GET", &format!("/v1/templates/{}", b.template), Some(ADMIN), None).await.0,
        StatusCode::NOT_FOUND
    );
    let spec = json!({"spec": {"pods": [{"name": "web", "image": "nginx:1.27"}]}});
    let (code, v) = a.call("PUT", &format!("/v1/templates/{}", b.template), Some(ADMIN), Some(spec)).await;
    assert!(code == StatusCode::CONFLICT && v["detail"].as_str().unwrap().contains("another installation"), "{v}");
    assert_eq!(
        a.call("DELETE", &format!("/v1/templates/{}", b.template), Some(ADMIN), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.call("DELETE", &format!("/v1/tenants/{}", b.alpha), Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);
    // The label is on what each API created.
    let t = Api::<resources::Tenant>::all(a.tc.client.clone()).get(&a.alpha).await.unwrap();
    assert_eq!(t.metadata.labels.unwrap()["paddock.dev/installation"], format!("a{run}"));

    // An instance of each runs; neither installation touches the other's.
    let mut started = Vec::new();
    for env in [&a, &b] {
        let (code, v) = env
            .call(
                "POST",
                &format!("/v1/tenants/{}/instances", env.alpha),
                Some(&env.alpha_token),
                Some(json!({"template": env.template})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
        started.push(format!("/v1/tenants/{}/instances/{}", env.alpha, v["name"].as_str().unwrap()));
    }
    for (env, path) in [(&a, &started[0]), (&b, &started[1])] {
        wait_until(T, "the instance runs", || async {
            env.call("GET", path, Some(ADMIN), None).await.1["phase"] == "Running"
        })
        .await;
    }
    let (_, all) = b.call("GET", "/v1/instances", Some(ADMIN), None).await;
    let tenants: Vec<&str> = all["items"].as_array().unwrap().iter().filter_map(|i| i["tenant"].as_str()).collect();
    assert!(!tenants.contains(&a.alpha.as_str()), "b lists a's instances: {all}");
    // Each tenant has the one namespace its own installation made.
    let namespaces = Api::<Namespace>::all(a.tc.client.clone());
    for (env, other) in [(&a, &b), (&b, &a)] {
        let own = format!("{}{}", env.state.settings().namespace_prefix, env.alpha);
        let foreign = format!("{}{}", other.state.settings().namespace_prefix, env.alpha);
        assert!(namespaces.get_opt(&own).await.unwrap().is_some(), "{own} missing");
        assert!(
            namespaces.get_opt(&foreign).await.unwrap().is_none(),
            "{foreign}: the other installation took {}",
            env.alpha
        );
    }
    for (env, path) in [(&a, &started[0]), (&b, &started[1])] {
        let _ = env.call("DELETE", path, Some(ADMIN), None).await;
    }
    b.finish().await;
    a.finish().await;
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() % 10_000).unwrap_or(0)
}
