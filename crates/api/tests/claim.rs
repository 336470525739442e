//! Personalised warm starts through the API: a pooled pod waits on
//! `GET /v1/claim` with its pool token and, once its set is claimed, gets
//! the instance's identity and values — generated, overridden and from a
//! Secret — without a cold start. Also the quota refusal (429) at start.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kubesim::testing::{wait_for, wait_until};
use resources::Template;
use resources::vocabulary::{CLAIM, POOL, POOL_SET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pod_learns_its_instance_and_values() {
    let env = Env::start().await;
    let c = env.tc.client.clone();
    let pool_ns = env.state.settings().pool_namespace.clone();
    let ns = env.state.namespace(&env.alpha);
    let name = format!("pers-{}", env.id);
    Api::<Secret>::namespaced(c.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "api-keys"}, "stringData": {"key": "s3cret"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let tpl = env.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": name},
        "spec": {"maxPerTenant": 3, "warmPool": {"size": 1, "personalize": "api"}, "pods": [{"name": "app", "image": "busybox:1.36",
            "env": [{"name": "FLAG", "generate": {"flag": {"format": "FLAG{%s}"}}},
                    {"name": "MODE", "value": "easy", "overridable": true},
                    {"name": "KEY", "secret": {"name": "api-keys", "key": "key"}},
                    {"name": "FIXED", "value": "1"}]}]}}));
    let templates: Api<Template> = Api::all(c.clone());
    templates.patch(&name, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&tpl)).await.unwrap();
    wait_for(&templates, &name, T, |t| t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.ready == 1))
        .await;

    // The warm pod: its token is mounted from the set's Secret; only fixed values are in its env.
    let pods: Api<Pod> = Api::namespaced(c.clone(), &pool_ns);
    let pod = pods.list(&ListParams::default().labels(&format!("{POOL}={name}"))).await.unwrap().items.remove(0);
    let env_names: Vec<String> =
        pod.spec.as_ref().unwrap().containers[0].env.iter().flatten().map(|e| e.name.clone()).collect();
    assert_eq!(env_names, ["FIXED", "PADDOCK_CLAIM_URL", "PADDOCK_CLAIM_TOKEN_FILE"]);
    let set = pod.labels()[POOL_SET].clone();
    let secret = Api::<Secret>::namespaced(c.clone(), &pool_ns).get(&format!("{set}-claim")).await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["app"].0.clone()).unwrap();

    // Bad tokens and waits are refused; an unclaimed pod is told to ask again.
    let (code, _) = env.call("GET", "/v1/claim?wait=0", Some(&format!("{token}x")), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = env.call("GET", "/v1/claim?wait=0", Some(&env.alpha_token), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, v) = env.call("GET", "/v1/claim?wait=61", Some(&token), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("wait")), "{v}");
    let (code, _) = env.call("GET", "/v1/claim?wait=0", Some(&token), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    // Long-poll, then start an instance: the pod gets its values at the claim.
    let waiting = {
        let (router, token) = (env.router.clone(), token.clone());
        tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::get("/v1/claim?wait=30")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (code, started) = env
        .call(
            "POST",
            &format!("/v1/tenants/{}/instances", env.alpha),
            Some(&env.alpha_token),
            Some(json!({"template": name, "env": {"MODE": "hard"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{started}");
    let inst = started["name"].as_str().unwrap().to_string();
    let (code, got) = tokio::time::timeout(T, waiting).await.unwrap().unwrap();
    assert_eq!(code, StatusCode::OK, "{got}");
    assert_eq!(
        (got["tenant"].as_str(), got["instance"].as_str(), got["pod"].as_str()),
        (Some(env.alpha.as_str()), Some(inst.as_str()), Some("app"))
    );
    let generated = Api::<Secret>::namespaced(c.clone(), &ns).get(&format!("{inst}-secrets")).await.unwrap();
    let flag = String::from_utf8(generated.data.unwrap()["app.FLAG"].0.clone()).unwrap();
    assert!(flag.starts_with("FLAG{"), "{flag}");
    assert_eq!(got["values"], json!({"FLAG": flag, "MODE": "hard", "KEY": "s3cret"}));
    let (_, view) = env.call("GET", &format!("/v1/tenants/{}/instances/{inst}", env.alpha), Some(ADMIN), None).await;
    assert_eq!(view["status"]["warm"], json!(true), "{view}");
    // Its log is read from the claimed pod in the pool namespace.
    let logs = format!("/v1/tenants/{}/instances/{inst}/logs", env.alpha);
    let (code, _, v) = env.call_full("GET", &logs, Some(&env.alpha_token), None, &[]).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert!(pods.get(&pod.name_any()).await.unwrap().labels().contains_key(CLAIM));

    // The pool refills; a second start is warm too, a third finds the pool empty and starts cold.
    wait_for(&templates, &name, T, |t| t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.ready == 1))
        .await;
    // A ResourceQuota on the pool namespace at what is there now holds the
    // next refill back (else, on a slow machine, it could be ready before the
    // third start and make it warm too).
    // Pods on their way out are left out: once gone, they would free room.
    let here = pods.list(&ListParams::default()).await.unwrap().items;
    let here = here.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
    let quota = json!({"metadata": {"name": "hold-refills"}, "spec": {"hard": {"pods": here.to_string()}}});
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::namespaced(c.clone(), &pool_ns);
    quotas.create(&PostParams::default(), &serde_json::from_value(quota).unwrap()).await.unwrap();
    wait_until(T, "the pool quota counted", || async {
        quotas.get("hold-refills").await.unwrap().status.is_some_and(|s| s.used.is_some())
    })
    .await;
    for k in 0..2 {
        let (code, v) = env
            .call(
                "POST",
                &format!("/v1/tenants/{}/instances", env.alpha),
                Some(&env.alpha_token),
                Some(json!({"template": name, "name": format!("more-{k}")})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
    wait_until(T, "one warm, one cold", || async {
        let mut warm = Vec::new();
        for k in 0..2 {
            let (_, v) =
                env.call("GET", &format!("/v1/tenants/{}/instances/more-{k}", env.alpha), Some(ADMIN), None).await;
            warm.push(v["status"]["warm"].as_bool());
        }
        warm.iter().filter(|w| **w == Some(true)).count() == 1
            && warm.iter().filter(|w| **w == Some(false)).count() == 1
    })
    .await;
    quotas.delete("hold-refills", &Default::default()).await.unwrap();
    env.finish().await;
}
