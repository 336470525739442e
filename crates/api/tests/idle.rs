//! Idle reaping, suspend and resume, end to end (API → controller →
//! kubesim, or a real cluster with PADDOCK_TEST_KUBECONFIG): an instance
//! kept in use by heartbeats runs on, one left alone is suspended (its pods
//! and their quota released, its generated values kept), the quota is
//! checked again on resume, and a template may stop idle instances instead.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use kubesim::testing::wait_until;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The instance's generated values, from its Secret.
async fn secret_values(env: &Env, ns: &str, inst: &str) -> BTreeMap<String, String> {
    let s = Api::<Secret>::namespaced(env.tc.client.clone(), ns).get(&format!("{inst}-secrets")).await.unwrap();
    s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
}

async fn pods_of(env: &Env, ns: &str, inst: &str) -> usize {
    let lp = ListParams::default().labels(&format!("paddock.dev/instance={inst}"));
    Api::<Pod>::namespaced(env.tc.client.clone(), ns).list(&lp).await.unwrap().items.len()
}

async fn phase(env: &Env, path: &str) -> (String, Value) {
    let (_, v) = env.call("GET", path, Some(ADMIN), None).await;
    (v["phase"].as_str().unwrap_or_default().to_string(), v)
}

async fn wait_phase(env: &Env, path: &str, want: &str) -> Value {
    let mut last = Value::Null;
    let reached = tokio::time::timeout(T, async {
        loop {
            let (p, v) = phase(env, path).await;
            last = v;
            if p == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{path} never became {want}: {last}");
    last
}

/// A tenant whose CPU quota fits one instance of the template, and the template.
async fn setup(env: &Env, tenant: &str, template: &str, idle: Value) -> String {
    let (code, body) = env
        .call(
            "POST",
            "/v1/tenants",
            Some(ADMIN),
            Some(json!({"name": tenant, "spec": {"kind": "Team", "quota": {"instances": 3, "cpu": "300m"},
                "storage": {"enabled": false}}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let tpl = json!({"spec": {"ttl": "1h", "maxPerTenant": 3, "idle": idle, "pods": [{"name": "web", "image": "nginx:1.27",
        "ports": [{"name": "http", "port": 80}], "resources": {"requests": {"cpu": "200m"}},
        "env": [{"name": "FLAG", "generate": {"flag": {"format": "CTF{%s}"}}}]}]}});
    let (code, body) = env.call("PUT", &format!("/v1/templates/{template}"), Some(ADMIN), Some(tpl)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    env.wait_tenant_ready(tenant).await;
    env.issue(tenant).await
}

async fn start(env: &Env, tenant: &str, token: &str, template: &str, name: &str) -> String {
    let body = json!({"template": template, "name": name});
    let (code, v) = env.call("POST", &format!("/v1/tenants/{tenant}/instances"), Some(token), Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let path = format!("/v1/tenants/{tenant}/instances/{name}");
    wait_phase(env, &path, "Running").await;
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_is_suspended_keeps_its_values_and_resumes_within_its_quota() {
    let env = Env::start().await;
    let (tenant, template) = (format!("idle-{}", env.id), format!("sleepy-{}", env.id));
    let token = setup(&env, &tenant, &template, json!({"after": "3s", "resumeOnUse": true})).await;
    let ns = format!("{}{tenant}", env.state.settings().namespace_prefix);
    let a = start(&env, &tenant, &token, &template, "first").await;
    let values = secret_values(&env, &ns, "first").await;
    let own = values["heartbeat-token"].clone();
    assert!(own.starts_with("pdi.") && values.contains_key("web.FLAG"), "{values:?}");
    // Its pod is told where and how to send heartbeats.
    let pod = Api::<Pod>::namespaced(env.tc.client.clone(), &ns).get("first-web").await.unwrap();
    let env_names: Vec<String> = pod.spec.unwrap().containers[0].env.iter().flatten().map(|e| e.name.clone()).collect();
    assert!(env_names.iter().any(|n| n == "PADDOCK_HEARTBEAT_TOKEN"), "{env_names:?}");

    // Heartbeats with its own token keep it running past the idle period.
    for _ in 0..10 {
        let (code, v) = env.call("POST", &format!("{a}/heartbeat"), Some(&own), None).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(phase(&env, &a).await.0, "Running", "heartbeats keep it running");
    // Its token is its own: not another instance's, and not a made-up one.
    let (code, _) = env.call("POST", &format!("{a}/heartbeat"), Some("pdi.made-up"), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let other = format!("/v1/tenants/{}/instances/first/heartbeat", env.alpha);
    assert_eq!(env.call("POST", &other, Some(&own), None).await.0, StatusCode::UNAUTHORIZED);
    let (code, _) = env.call("POST", &format!("{a}/suspend"), Some(&own), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a heartbeat token allows heartbeats only");

    // Left alone, it is suspended: pods gone, everything else kept.
    let v = wait_phase(&env, &a, "Suspended").await;
    assert!(v["suspend"] == true && v["message"].as_str().unwrap().contains("nobody used it"), "{v}");
    wait_until(T, "the suspended instance's pods are gone", || async { pods_of(&env, &ns, "first").await == 0 }).await;
    assert_eq!(secret_values(&env, &ns, "first").await, values, "its generated values stay");

    // Its quota is free: a second instance starts in it.
    let b = start(&env, &tenant, &token, &template, "second").await;
    // Now the quota is full again: resuming the first is refused.
    let (code, v) = env.call("POST", &format!("{a}/resume"), Some(&token), None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("cpu"), "{v}");
    assert_eq!(phase(&env, &a).await.0, "Suspended");

    // The second one suspended by hand: then a heartbeat resumes the first
    // (its template resumes on use), with the same values.
    let (code, v) = env.call("POST", &format!("{b}/suspend"), Some(&token), None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let v = wait_phase(&env, &b, "Suspended").await;
    let reason = v["status"]["conditions"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason == "Suspending" || reason == "Suspended", "{v}");
    wait_until(T, "the second's pods are gone", || async { pods_of(&env, &ns, "second").await == 0 }).await;
    // Once they are, the condition says so (Suspending → Suspended).
    let settled = || async {
        let (_, v) = phase(&env, &b).await;
        v["status"]["conditions"][0]["reason"] == "Suspended"
    };
    wait_until(T, "the second settled as Suspended", settled).await;
    let resume_by_use =
        || async { env.call("POST", &format!("{a}/heartbeat"), Some(&token), None).await.0 == StatusCode::ACCEPTED };
    // The quota's usage may lag the pod's deletion a moment.
    wait_until(T, "a heartbeat resumes the first", resume_by_use).await;
    let v = wait_phase(&env, &a, "Running").await;
    assert!(v["status"]["lastActivity"].is_string(), "{v}");
    assert_eq!(secret_values(&env, &ns, "first").await, values, "resumed with the same values");
    assert_eq!(pods_of(&env, &ns, "first").await, 1);

    // Each idle reap and resume is counted and told as an Event.
    let (_, _, metrics) = env.call_full("GET", "/metrics", None, None, &[]).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let reaped = format!("paddock_idle_reaps_total{{template=\"{template}\",action=\"Suspend\"}} 1");
    assert!(metrics.contains(&reaped), "{reaped} not in the metrics");
    assert!(metrics.contains(&format!("paddock_instance_resumes_total{{template=\"{template}\"}} 1")));
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(env.tc.client.clone(), &ns);
    wait_until(T, "the IdleSuspended and Resumed Events", || async {
        let reasons: Vec<String> =
            events.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
        reasons.iter().any(|r| r == "IdleSuspended") && reasons.iter().any(|r| r == "Resumed")
    })
    .await;
    for name in ["first", "second"] {
        let _ = env.call("DELETE", &format!("/v1/tenants/{tenant}/instances/{name}"), Some(ADMIN), None).await;
    }
    let _ = env.call("DELETE", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_may_stop_idle_instances_and_a_suspended_one_is_renewed_and_resumed() {
    let env = Env::start().await;
    let (tenant, template) = (format!("reap-{}", env.id), format!("reaped-{}", env.id));
    let token = setup(&env, &tenant, &template, json!({"after": "2s", "action": "Stop"})).await;
    let a = start(&env, &tenant, &token, &template, "gone").await;
    wait_until(T, "the idle instance is stopped and deleted", || async {
        env.call("GET", &a, Some(ADMIN), None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    // Suspended by hand, an instance still has its lifetime: renewing works,
    // and (the template does not resume on use) a heartbeat says it is suspended.
    let b = start(&env, &tenant, &token, &template, "kept").await;
    let (code, _) = env.call("POST", &format!("{b}/suspend"), Some(&token), None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    wait_phase(&env, &b, "Suspended").await;
    let (code, v) = env.call("POST", &format!("{b}/renew"), Some(&token), Some(json!({"ttl": "90m"}))).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["phase"], "Suspended", "a renewal does not resume it: {v}");
    let (code, v) = env.call("POST", &format!("{b}/heartbeat"), Some(&token), None).await;
    assert_eq!((code, v["type"].as_str()), (StatusCode::CONFLICT, Some("https://paddock.dev/problems/suspended")));
    // Hostile heartbeats: made-up instance tokens and names are refused
    // alike (no name leaks), another tenant's token sees nothing.
    let long = format!("pdi.{}", "A".repeat(8000));
    let base = format!("/v1/tenants/{tenant}/instances");
    for (path, token, want) in [
        (format!("{b}/heartbeat"), long.as_str(), StatusCode::UNAUTHORIZED),
        (format!("{base}/{}/heartbeat", "x".repeat(300)), "pdi.x", StatusCode::UNAUTHORIZED),
        (format!("{base}/Not_A_Name/heartbeat"), "pdi.x", StatusCode::UNAUTHORIZED),
        (format!("{base}/no-such/heartbeat"), "pdi.x", StatusCode::UNAUTHORIZED),
        ("/v1/tenants/Nobody/instances/kept/heartbeat".to_string(), "pdi.x", StatusCode::UNAUTHORIZED),
        (format!("{base}/{}/heartbeat", "x".repeat(300)), token.as_str(), StatusCode::NOT_FOUND),
        (format!("{b}/heartbeat"), env.beta_token.as_str(), StatusCode::NOT_FOUND),
        (format!("{b}/suspend"), env.beta_token.as_str(), StatusCode::NOT_FOUND),
        (format!("{b}/resume"), env.beta_token.as_str(), StatusCode::NOT_FOUND),
    ] {
        let (code, v) = env.call("POST", &path, Some(token), None).await;
        assert_eq!(code, want, "{path}: {v}");
    }
    // Suspending twice is answered as it is; resuming brings it back.
    assert_eq!(env.call("POST", &format!("{b}/suspend"), Some(&token), None).await.0, StatusCode::OK);
    // The quota's usage may lag the pods' deletion a moment (429 until it catches up).
    let resumed =
        || async { env.call("POST", &format!("{b}/resume"), Some(&token), None).await.0 == StatusCode::ACCEPTED };
    wait_until(T, "the suspended instance resumes", resumed).await;
    wait_phase(&env, &b, "Running").await;
    assert_eq!(env.call("POST", &format!("{b}/resume"), Some(&token), None).await.0, StatusCode::OK);
    let _ = env.call("DELETE", &b, Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_instance_resumes_on_a_newly_claimed_warm_set() {
    let env = Env::start().await;
    let (tenant, template) = (format!("pooled-{}", env.id), format!("warm-{}", env.id));
    let (code, body) = env
        .call(
            "POST",
            "/v1/tenants",
            Some(ADMIN),
            Some(json!({"name": tenant, "spec": {"kind": "Team", "storage": {"enabled": false}}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let tpl = json!({"spec": {"ttl": "1h", "idle": {"after": "2s"}, "warmPool": {"size": 1},
        "pods": [{"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "port": 80}]}]}});
    let (code, body) = env.call("PUT", &format!("/v1/templates/{template}"), Some(ADMIN), Some(tpl)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    env.wait_tenant_ready(&tenant).await;
    let token = env.issue(&tenant).await;
    let ready_set = || async {
        let (_, t) = env.call("GET", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
        t["status"]["pool"]["ready"].as_u64().unwrap_or(0) >= 1
    };
    wait_until(T, "a Ready pod set in the pool", ready_set).await;
    let a = start(&env, &tenant, &token, &template, "pooled").await;
    let (_, v) = phase(&env, &a).await;
    let first_set = v["status"]["claim"]["set"].as_str().expect("claimed from the pool").to_string();
    let v = wait_phase(&env, &a, "Suspended").await;
    assert!(v["status"]["claim"].is_null(), "the claimed set is given back: {v}");
    let pool = Api::<Pod>::namespaced(env.tc.client.clone(), &env.state.settings().pool_namespace);
    wait_until(T, "the claimed set's pods are gone", || async {
        pool.get_opt(&format!("{first_set}-web")).await.unwrap().is_none()
    })
    .await;
    wait_until(T, "the pool refilled", ready_set).await;
    let (code, v) = env.call("POST", &format!("{a}/resume"), Some(&token), None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let v = wait_phase(&env, &a, "Running").await;
    let second = v["status"]["claim"]["set"].as_str().unwrap_or_default();
    assert!(v["status"]["warm"] == true && !second.is_empty() && second != first_set, "{v}");
    let _ = env.call("DELETE", &a, Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
    env.finish().await;
}

/// A notebook's own activity endpoint (Jupyter Server's `/api/status`,
/// which kubesim plays for Jupyter images) says when it was last used: a
/// notebook in use runs on past its idle period, one left alone is
/// suspended; an endpoint that cannot answer is said in an Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notebook_in_use_by_its_own_account_runs_on_and_one_left_alone_sleeps() {
    let env = Env::start().await;
    let Some(_) = env.tc.sim("the test process reaches the notebook at its pod's address") else {
        env.finish().await;
        return;
    };
    let (tenant, template) = (format!("lab-{}", env.id), format!("nb-{}", env.id));
    let body =
        json!({"name": tenant, "spec": {"kind": "User", "quota": {"instances": 3}, "storage": {"enabled": false}}});
    assert_eq!(env.call("POST", "/v1/tenants", Some(ADMIN), Some(body)).await.0, StatusCode::CREATED);
    let pod = |token_env: &str| {
        json!([{"name": "notebook", "image": "quay.io/jupyter/base-notebook:2024-10-07", "security": {"runAsUser": 1000},
            "ports": [{"name": "http", "port": 8888}],
            "env": [{"name": "JUPYTER_TOKEN", "generate": {"random": {"length": 32}}}, {"name": "WRONG", "value": token_env}]}])
    };
    for (name, token_from) in [(template.clone(), "JUPYTER_TOKEN"), (format!("{template}-bad"), "WRONG")] {
        let tpl = json!({"spec": {"ttl": "1h", "maxPerTenant": 3, "pods": pod("not-the-token"),
            "idle": {"after": "2s", "signal": "Http", "http": {"port": "http", "tokenFrom": token_from}}}});
        let (code, v) = env.call("PUT", &format!("/v1/templates/{name}"), Some(ADMIN), Some(tpl)).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
    env.wait_tenant_ready(&tenant).await;
    let token = env.issue(&tenant).await;
    let ns = format!("{}{tenant}", env.state.settings().namespace_prefix);
    let a = start(&env, &tenant, &token, &template, "used").await;
    // Only Paddock's pods may ask the endpoint.
    let pol = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(env.tc.client.clone(), &ns);
    let pol = serde_json::to_value(pol.get("used-idle-probe").await.unwrap().spec.unwrap()).unwrap();
    assert_eq!(pol["ingress"][0]["ports"][0]["port"], 8888, "{pol}");

    // Someone works in the notebook (any API request but /api/status is use).
    let jupyter_token = secret_values(&env, &ns, "used").await["notebook.JUPYTER_TOKEN"].clone();
    let ip = Api::<Pod>::namespaced(env.tc.client.clone(), &ns)
        .get("used-notebook")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let http = reqwest::Client::new();
    let work = || async {
        let r = http
            .get(format!("http://{ip}:8888/api/contents"))
            .header("authorization", format!("token {jupyter_token}"));
        assert!(r.send().await.unwrap().status().is_success());
    };
    for _ in 0..12 {
        work().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(phase(&env, &a).await.0, "Running", "in use for 6 s with a 2 s idle period");
    }
    let (_, v) = phase(&env, &a).await;
    assert!(v["status"]["lastActivity"].is_string(), "the activity it reported is on record: {v}");
    // Left alone, it sleeps.
    let v = wait_phase(&env, &a, "Suspended").await;
    assert_eq!(v["status"]["conditions"][0]["reason"].as_str().map(|r| r.starts_with("Idle")), Some(true), "{v}");

    // An endpoint that refuses Paddock's token: said in an Event, and no sign of use.
    let b = start(&env, &tenant, &token, &format!("{template}-bad"), "refused").await;
    wait_phase(&env, &b, "Suspended").await;
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(env.tc.client.clone(), &ns);
    wait_until(T, "the IdleProbeFailed Event", || async {
        events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
            e.reason.as_deref() == Some("IdleProbeFailed") && e.message.as_deref().is_some_and(|m| m.contains("403"))
        })
    })
    .await;
    for inst in ["used", "refused"] {
        env.call("DELETE", &format!("/v1/tenants/{tenant}/instances/{inst}"), Some(ADMIN), None).await;
    }
    env.call("DELETE", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    for name in [template.clone(), format!("{template}-bad")] {
        env.call("DELETE", &format!("/v1/templates/{name}"), Some(ADMIN), None).await;
    }
    env.finish().await;
}

/// The Http signal on a warm instance: its pod is the claimed set's, in the
/// pool namespace, where the set's `<set>-idle-probe` policy admits Paddock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_notebook_is_asked_in_the_pool_namespace() {
    let env = Env::start().await;
    let Some(_) = env.tc.sim("the test process reaches the notebook at its pod's address") else {
        env.finish().await;
        return;
    };
    let (tenant, template) = (format!("wlab-{}", env.id), format!("wnb-{}", env.id));
    let body =
        json!({"name": tenant, "spec": {"kind": "User", "quota": {"instances": 3}, "storage": {"enabled": false}}});
    assert_eq!(env.call("POST", "/v1/tenants", Some(ADMIN), Some(body)).await.0, StatusCode::CREATED);
    let tpl = json!({"spec": {"ttl": "1h", "maxPerTenant": 3, "warmPool": {"size": 1},
        "pods": [{"name": "notebook", "image": "quay.io/jupyter/base-notebook:2024-10-07", "security": {"runAsUser": 1000},
            "ports": [{"name": "http", "port": 8888}]}],
        "idle": {"after": "2s", "signal": "Http", "http": {"port": 8888}}}});
    let (code, v) = env.call("PUT", &format!("/v1/templates/{template}"), Some(ADMIN), Some(tpl)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    env.wait_tenant_ready(&tenant).await;
    let pool = env.state.settings().pool_namespace.clone();
    let pods: Api<Pod> = Api::namespaced(env.tc.client.clone(), &pool);
    wait_until(T, "a Ready pod set in the pool", || async {
        let (_, t) = env.call("GET", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
        t["status"]["pool"]["ready"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let token = env.issue(&tenant).await;
    let a = start(&env, &tenant, &token, &template, "warm").await;
    let (_, v) = phase(&env, &a).await;
    let set = v["status"]["claim"]["set"].as_str().unwrap_or_else(|| panic!("claimed from the pool: {v}")).to_string();
    let pols = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(env.tc.client.clone(), &pool);
    assert!(pols.get_opt(&format!("{set}-idle-probe")).await.unwrap().is_some(), "the set's probe policy");
    let ip = pods.get(&format!("{set}-notebook")).await.unwrap().status.unwrap().pod_ip.unwrap();
    let http = reqwest::Client::new();
    for _ in 0..10 {
        assert!(http.get(format!("http://{ip}:8888/api/contents")).send().await.unwrap().status().is_success());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(phase(&env, &a).await.0, "Running", "in use for 5 s with a 2 s idle period");
    }
    wait_phase(&env, &a, "Suspended").await;
    env.call("DELETE", &a, Some(ADMIN), None).await;
    env.call("DELETE", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    env.call("DELETE", &format!("/v1/templates/{template}"), Some(ADMIN), None).await;
    env.finish().await;
}
