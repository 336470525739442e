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
