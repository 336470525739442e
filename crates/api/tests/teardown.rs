//! Deleting a tenant with running instances: the instance reconciler stops
//! writing into the terminating namespace (on a real API server each such
//! write is a 403 it has to serve: 1,031 of them for 300 instances), and the
//! tenant, its namespace and its instances go.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use serde_json::json;

/// The instance controller's failed reconciles refused as forbidden, from the
/// metrics the API serves.
async fn forbidden(env: &Env) -> u64 {
    let (_, _, body) = env.call_full("GET", "/metrics", None, None, &[]).await;
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find(|l| l.starts_with(r#"paddock_reconcile_errors_total{controller="instance",category="forbidden"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_instances_write_nothing_into_its_terminating_namespace() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let mut names = Vec::new();
    for _ in 0..2 {
        let (code, inst) = env
            .call("POST", &format!("/v1/tenants/{a}/instances"), Some(&tok), Some(json!({"template": env.template})))
            .await;
        assert_eq!(code, StatusCode::CREATED, "{inst}");
        names.push(inst["name"].as_str().unwrap().to_string());
    }
    for n in &names {
        kubesim::testing::wait_until(T, &format!("{n} running"), || async {
            let (_, v) = env.call("GET", &format!("/v1/tenants/{a}/instances/{n}"), Some(ADMIN), None).await;
            v["phase"] == "Running"
        })
        .await;
    }
    let before = forbidden(&env).await;
    let (code, _) = env.call("DELETE", &format!("/v1/tenants/{a}"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    kubesim::testing::wait_until(T, "the tenant is gone", || async {
        env.call("GET", &format!("/v1/tenants/{a}"), Some(ADMIN), None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(forbidden(&env).await, before, "the instance reconciler wrote into the terminating namespace");
    env.finish().await;
}

/// Ten retries of one start with one Idempotency-Key, all at once: one
/// instance, one 201 and nine replays, and the tenant's quota charged once
/// (a real API server charges every racing create of the name before it
/// finds the name taken, and kubesim now does too: issue 28.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_with_one_key_all_get_the_one_instance() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let path = format!("/v1/tenants/{a}/instances");
    let body = json!({"template": env.template}).to_string();
    let calls = (0..10)
        .map(|_| env.call_full("POST", &path, Some(&tok), Some(body.clone()), &[("idempotency-key", "retry-me")]));
    let answers = futures::future::join_all(calls).await;
    let codes: Vec<u16> = answers.iter().map(|(c, _, _)| c.as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 9, "{codes:?}");
    let names: std::collections::BTreeSet<String> =
        answers.iter().map(|(_, _, v)| v["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let (_, list) = env.call("GET", &path, Some(&tok), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert!(env.state.keyed_starts.is_empty(), "no lock left behind");
    env.finish().await;
}

/// A Failed instance (its image cannot be pulled) gives its pods back at
/// once, so the tenant's quota is free, keeps its status to be read, and is
/// deleted after the retention (issue 30.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_releases_its_pods_and_goes_after_the_retention() {
    let env = Env::start_with(|s| s.failed_retention = std::time::Duration::from_secs(3)).await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let bad = format!("bad-{}", env.id);
    let (code, body) = env
        .call(
            "PUT",
            &format!("/v1/templates/{bad}"),
            Some(ADMIN),
            Some(json!({"spec": {"ttl": "1h",
            "pods": [{"name": "web", "image": "registry.example/doesnotexist:1"}]}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, inst) =
        env.call("POST", &format!("/v1/tenants/{a}/instances"), Some(&tok), Some(json!({"template": bad}))).await;
    assert_eq!(code, StatusCode::CREATED, "{inst}");
    let name = inst["name"].as_str().unwrap().to_string();
    let path = format!("/v1/tenants/{a}/instances/{name}");
    kubesim::testing::wait_until(T, "the instance fails and gives its pods back", || async {
        let (_, v) = env.call("GET", &path, Some(ADMIN), None).await;
        v["phase"] == "Failed" && v["message"].as_str().unwrap_or("").contains("its pods were removed")
    })
    .await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.tc.client.clone(), &env.state.namespace(&a));
    let lp = kube::api::ListParams::default().labels(&format!("paddock.dev/instance={name}"));
    kubesim::testing::wait_until(T, "no pod of it is left", || async {
        pods.list_metadata(&lp).await.unwrap().items.is_empty()
    })
    .await;
    // Nor in its status (a merge patch of a status that leaves an emptied
    // list out used to leave the old list in place).
    let insts: kube::Api<resources::Instance> = kube::Api::namespaced(env.tc.client.clone(), &env.state.namespace(&a));
    let st = insts.get(&name).await.unwrap().status.unwrap();
    assert!(st.pods.is_empty() && st.endpoints.is_empty(), "{st:?}");
    kubesim::testing::wait_until(T, "the instance is deleted after the retention", || async {
        env.call("GET", &path, Some(ADMIN), None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let _ = env.call("DELETE", &format!("/v1/templates/{bad}"), Some(ADMIN), None).await;
    env.finish().await;
}
