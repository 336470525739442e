//! `GET /v1/tenants/{tenant}/instances/{instance}/logs`: which pod, and the
//! answers for a pod that has not started. (kubesim's containers do not run,
//! so a log read there is empty; on a real cluster it is the container's.)

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use kubesim::testing::wait_until;
use serde_json::{Value, json};

async fn phase(env: &Env, path: &str) -> Value {
    env.call("GET", path, Some(ADMIN), None).await.1["phase"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_their_pod_and_say_when_it_has_not_started() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let base = format!("/v1/tenants/{a}/instances");
    let start = |template: &str, name: &str| {
        let body = json!({"template": template, "name": name});
        let (env, tok, base) = (&env, tok.clone(), base.clone());
        async move { env.call("POST", &base, Some(&tok), Some(body)).await }
    };

    // One pod: it is implied; the answer is text.
    let (code, v) = start(&env.template, "one").await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let one = format!("{base}/one");
    wait_until(T, "one runs", || async { phase(&env, &one).await == "Running" }).await;
    let (code, h, v) = env.call_full("GET", &format!("{one}/logs?tail=10"), Some(&tok), None, &[]).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    let (code, _, _) = env.call_full("GET", &format!("{one}/logs?pod=web&follow=true"), Some(&tok), None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    let (code, v) = env.call("GET", &format!("{one}/logs?tail=0"), Some(&tok), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tail")), "{v}");
    let (code, v) = env.call("GET", &format!("{one}/logs?pod=web,x%3Dy"), Some(&tok), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pod")), "{v}");
    let (code, v) = env.call("GET", &format!("{one}/logs?pod=db"), Some(&tok), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pod")), "{v}");
    assert_eq!(v["detail"], "instance \"one\" has no pod \"db\"; it has web", "{v}");

    // Two pods: which one must be said.
    let two = format!("{}-two", env.template);
    let tpl =
        json!({"spec": {"pods": [{"name": "api", "image": "nginx:1.27"}, {"name": "db", "image": "nginx:1.27"}]}});
    assert_eq!(env.call("PUT", &format!("/v1/templates/{two}"), Some(ADMIN), Some(tpl)).await.0, StatusCode::CREATED);
    let (code, v) = start(&two, "pair").await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let pair = format!("{base}/pair");
    wait_until(T, "pair runs", || async { phase(&env, &pair).await == "Running" }).await;
    let (code, v) = env.call("GET", &format!("{pair}/logs"), Some(&tok), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pod")), "{v}");
    assert_eq!(v["detail"], "the instance has pods api, db: say which one", "{v}");
    assert_eq!(env.call("GET", &format!("{pair}/logs?pod=db"), Some(&tok), None).await.0, StatusCode::OK);

    // A container that cannot start: 409 with the kubelet's reason.
    let bad = format!("{}-bad", env.template);
    let tpl = json!({"spec": {"pods": [{"name": "app", "image": "registry.example/doesnotexist:1"}]}});
    assert_eq!(env.call("PUT", &format!("/v1/templates/{bad}"), Some(ADMIN), Some(tpl)).await.0, StatusCode::CREATED);
    let (code, v) = start(&bad, "broken").await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let broken = format!("{base}/broken");
    wait_until(T, "broken fails", || async { phase(&env, &broken).await == "Failed" }).await;
    let (code, v) = env.call("GET", &format!("{broken}/logs"), Some(&tok), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["type"], "https://paddock.dev/problems/not-started", "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("is waiting to start: ErrImagePull") || detail.contains("ImagePullBackOff"), "{v}");

    for (n, t) in [("one", None), ("pair", Some(two)), ("broken", Some(bad))] {
        let _ = env.call("DELETE", &format!("{base}/{n}"), Some(&tok), None).await;
        if let Some(t) = t {
            let _ = env.call("DELETE", &format!("/v1/templates/{t}"), Some(ADMIN), None).await;
        }
    }
    env.finish().await;
}
