//! Tenants as adversaries (issue 27): each finding of the attack on the API
//! and the controller, as a test that failed before its fix. Over kubesim,
//! or a real cluster with PADDOCK_TEST_KUBECONFIG (names unique per run).

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

async fn put_template(env: &Env, name: &str, spec: Value) -> (StatusCode, Value) {
    env.call("PUT", &format!("/v1/templates/{name}"), Some(ADMIN), Some(json!({ "spec": spec }))).await
}

async fn instance_status(env: &Env, tenant: &str, name: &str) -> Value {
    let (_, v) = env.call("GET", &format!("/v1/tenants/{tenant}/instances/{name}"), Some(ADMIN), None).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_are_bounded_and_a_panic_stops_no_reconciler() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let nomax = format!("nomax-{}", env.id);
    let (code, body) = put_template(
        &env,
        &nomax,
        json!({"ttl": "1h", "maxPerTenant": 3,
        "pods": [{"name": "web", "image": "nginx:1.27"}]}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let starts = format!("/v1/tenants/{a}/instances");
    // Start: far beyond any bound, and beyond the installation's cap (7d).
    for ttl in ["999999999h", "18446744073709551615s", "8d"] {
        let (code, p) = env.call("POST", &starts, Some(&tok), Some(json!({"template": nomax, "ttl": ttl}))).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{ttl}: {p}");
        assert_eq!(p["field"], "ttl", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("longer than"), "{p}");
    }
    let (code, p) = env.call("POST", &starts, Some(&tok), Some(json!({"template": nomax, "ttl": "0s"}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("0s is zero"), "{p}");
    let (code, inst) = env.call("POST", &starts, Some(&tok), Some(json!({"template": nomax, "ttl": "2h"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{inst}");
    let name = inst["name"].as_str().unwrap().to_string();
    let renew = format!("/v1/tenants/{a}/instances/{name}/renew");
    for ttl in ["999999999h", "18446744073709551615s"] {
        let (code, p) = env.call("POST", &renew, Some(&tok), Some(json!({ "ttl": ttl }))).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{ttl}: {p}");
        assert_eq!(p["field"], "ttl", "{p}");
    }
    // A renewal past the cap stops at the cap; the next one is at the limit.
    let (code, renewed) = env.call("POST", &renew, Some(&tok), Some(json!({"ttl": "9d"}))).await;
    assert_eq!(code, StatusCode::OK, "{renewed}");
    let expires: jiff::Timestamp = renewed["expires"].as_str().unwrap().parse().unwrap();
    let created: jiff::Timestamp = renewed["created"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.duration_until(expires).as_secs(), 7 * 86_400, "capped at 7d: {renewed}");
    let (code, p) = env.call("POST", &renew, Some(&tok), Some(json!({"ttl": "9d"}))).await;
    assert_eq!(code, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("7d"), "{p}");

    // The same through the CRD path, which the API's checks do not guard: the
    // controller refuses it on the object and goes on reconciling the rest.
    let ns = env.state.namespace(&a);
    let mut hostile: resources::Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1",
        "kind": "Instance", "metadata": {"name": "forever", "namespace": ns},
        "spec": {"template": nomax, "ttl": "999999999h"}}))
    .unwrap();
    hostile.metadata.namespace = Some(ns.clone());
    Api::<resources::Instance>::namespaced(env.tc.client.clone(), &ns)
        .create(&PostParams::default(), &hostile)
        .await
        .unwrap();
    kubesim::testing::wait_until(T, "the hostile instance is refused on its status", || async {
        let v = instance_status(&env, &a, "forever").await;
        v["phase"] == "Failed" && v["message"].as_str().unwrap_or("").contains("spec.ttl")
    })
    .await;
    let b = env.beta.clone();
    let beta_starts = format!("/v1/tenants/{b}/instances");
    let (code, later) = env.call("POST", &beta_starts, Some(&env.beta_token), Some(json!({"template": nomax}))).await;
    assert_eq!(code, StatusCode::CREATED, "{later}");
    let later = later["name"].as_str().unwrap().to_string();
    kubesim::testing::wait_until(T, "another tenant's instance is still reconciled", || async {
        instance_status(&env, &b, &later).await["phase"].is_string()
    })
    .await;
    let (code, health) = env.call("GET", "/healthz", None, None).await;
    assert_eq!(code, StatusCode::OK, "{health}");
    let _ = env.call("DELETE", &format!("/v1/tenants/{a}/instances/forever"), Some(ADMIN), None).await;
    let _ = env.call("DELETE", &format!("/v1/templates/{nomax}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_takes_a_namespace_that_is_not_its_own() {
    let env = Env::start().await;
    // Paddock's own namespaces, by the installation's settings.
    for name in ["system", "pool"] {
        let (code, p) =
            env.call("POST", "/v1/tenants", Some(ADMIN), Some(json!({"name": name, "spec": {"kind": "Team"}}))).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {p}");
        assert_eq!(p["field"], "name", "{p}");
    }
    // A namespace that exists and is nobody's tenant namespace.
    let taken = format!("taken{}", env.id);
    let ns_name = env.state.namespace(&taken);
    let nss: Api<Namespace> = Api::all(env.tc.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns_name}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let (code, p) =
        env.call("POST", "/v1/tenants", Some(ADMIN), Some(json!({"name": taken, "spec": {"kind": "Team"}}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("already exists"), "{p}");
    // The CRD path: the Tenant is refused on its status, and deleting it
    // leaves the namespaces it never owned.
    let tenants: Api<resources::Tenant> = Api::all(env.tc.client.clone());
    for name in ["system".to_string(), taken.clone()] {
        let t: resources::Tenant = serde_json::from_value(env.labelled(json!({"apiVersion": "paddock.dev/v1alpha1",
            "kind": "Tenant", "metadata": {"name": name}, "spec": {"kind": "Team"}})))
        .unwrap();
        tenants.create(&PostParams::default(), &t).await.unwrap();
        kubesim::testing::wait_until(T, &format!("tenant {name} is refused"), || async {
            let t = tenants.get(&name).await.unwrap();
            let conds = t.status.map(|s| s.conditions).unwrap_or_default();
            conds.iter().any(|c| c.reason == "InvalidSpec" && c.message.contains("cannot be a tenant"))
        })
        .await;
        // Nor does a refused tenant start anything in the namespace it was refused.
        let start = json!({"template": env.template});
        let (code, p) = env.call("POST", &format!("/v1/tenants/{name}/instances"), Some(ADMIN), Some(start)).await;
        assert_eq!(code, StatusCode::CONFLICT, "{name}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("cannot be a tenant"), "{p}");
        let in_ns: Api<resources::Instance> = Api::namespaced(env.tc.client.clone(), &env.state.namespace(&name));
        assert!(in_ns.list(&Default::default()).await.unwrap().items.is_empty(), "{name}: an instance was made");
        tenants.delete(&name, &Default::default()).await.unwrap();
        kubesim::testing::wait_until(T, &format!("tenant {name} is gone"), || async {
            tenants.get_opt(&name).await.unwrap().is_none()
        })
        .await;
    }
    for ns in [env.state.settings().system_namespace.clone(), ns_name.clone()] {
        let n = nss.get(&ns).await.unwrap();
        assert!(n.metadata.deletion_timestamp.is_none(), "{ns} was deleted with a tenant that never owned it");
    }
    let _ = nss.delete(&ns_name, &Default::default()).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_env_value_is_taken_literally() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let (code, inst) = env
        .call(
            "POST",
            &format!("/v1/tenants/{a}/instances"),
            Some(&tok),
            Some(json!({"template": env.template, "env": {"MODE": "$(FLAG) and $$(X) $"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{inst}");
    let name = inst["name"].as_str().unwrap().to_string();
    let pods: Api<Pod> = Api::namespaced(env.tc.client.clone(), &env.state.namespace(&a));
    let pod = format!("{name}-web");
    kubesim::testing::wait_until(T, "the pod exists", || async { pods.get_opt(&pod).await.unwrap().is_some() }).await;
    let p = pods.get(&pod).await.unwrap();
    let env_vars = p.spec.unwrap().containers[0].env.clone().unwrap();
    let mode = env_vars.iter().find(|e| e.name == "MODE").unwrap();
    // Kubernetes turns `$$` into `$`: the container sees exactly what was sent.
    assert_eq!(mode.value.as_deref(), Some("$$(FLAG) and $$$$(X) $$"));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_that_break_isolation_are_refused() {
    let env = Env::start().await;
    let name = format!("evil-{}", env.id);
    let pod = |extra: Value| {
        let mut p = json!({"name": "web", "image": "nginx:1.27"});
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"pods": [p]})
    };
    let cases: Vec<(Value, &str)> = vec![
        (pod(json!({"security": {"capabilities": ["SYS_ADMIN"]}})), "spec.pods[0].security.capabilities[0]"),
        (pod(json!({"security": {"capabilities": ["ALL"]}})), "spec.pods[0].security.capabilities[0]"),
        (pod(json!({"security": {"capabilities": ["garbage"]}})), "spec.pods[0].security.capabilities[0]"),
        (
            pod(json!({"readinessProbe": {"httpGet": {"host": "169.254.169.254", "path": "/", "port": 80}}})),
            "spec.pods[0].readinessProbe.httpGet.host",
        ),
        (pod(json!({"mounts": {"config": {"path": "/", "files": {"a": "b"}}}})), "spec.pods[0].mounts.config.path"),
        (
            pod(json!({"mounts": {"config": {"path": "/var/run/secrets/kubernetes.io/serviceaccount",
                "files": {"token": "x"}}}})),
            "spec.pods[0].mounts.config.path",
        ),
        (
            pod(json!({"env": [{"name": "K", "secret": {"name": "vpn", "key": "privateKey"}}]})),
            "spec.pods[0].env[0].secret.name",
        ),
        (
            pod(json!({"env": [{"name": "K", "secret": {"name": "other-ns/name", "key": "k"}}]})),
            "spec.pods[0].env[0].secret.name",
        ),
        (pod(json!({"image": "nginx\u{0000}:1"})), "spec.pods[0].image"),
        (pod(json!({"privileged": true})), "spec.pods[0].privileged"),
        (pod(json!({"security": {"runAsUser": 0}})), "spec.pods[0].security.runAsUser"),
        (json!({"hostNetwork": true, "pods": [{"name": "web", "image": "nginx:1.27"}]}), "spec.hostNetwork"),
    ];
    for (spec, field) in cases {
        let (code, p) = put_template(&env, &name, spec.clone()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {p}");
        assert_eq!(p["field"], field, "{spec}: {p}");
    }
    // The installation's runtime class (none here) cannot be weakened when
    // it names one: checked by the policy, with the settings given.
    let spec: resources::TemplateSpec =
        serde_json::from_value(json!({"runtimeClassName": "runc", "pods": [{"name": "a", "image": "b"}]})).unwrap();
    let settings = controller::config::Settings { runtime_class: Some("gvisor".into()), ..Default::default() };
    assert_eq!(spec.validate_for(&settings.template_policy())[0].field, "spec.runtimeClassName");
    // The same template applied with kubectl is stored, but not Accepted, and
    // starts nothing: the API says why at once (issue 30.2).
    let tpl: resources::Template = serde_json::from_value(env.labelled(json!({"apiVersion": "paddock.dev/v1alpha1",
        "kind": "Template", "metadata": {"name": name},
        "spec": {"pods": [{"name": "web", "image": "nginx:1.27", "security": {"capabilities": ["SYS_ADMIN"]}}]}})))
    .unwrap();
    Api::<resources::Template>::all(env.tc.client.clone()).create(&PostParams::default(), &tpl).await.unwrap();
    let (code, p) = env
        .call(
            "POST",
            &format!("/v1/tenants/{}/instances", env.alpha),
            Some(&env.alpha_token),
            Some(json!({"template": name})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["type"].as_str().unwrap().ends_with("/template-invalid"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("SYS_ADMIN"), "{p}");
    let _ = env.call("DELETE", &format!("/v1/templates/{name}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_token_is_revoked() {
    let env = Env::start().await;
    let a = env.alpha.clone();
    let (code, issued) = env.call("POST", &format!("/v1/tenants/{a}/tokens"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::CREATED);
    let token = issued["token"].as_str().unwrap().to_string();
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/tenants/{a}/events", env.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = Box::pin(resp.bytes_stream().eventsource());
    let first = tokio::time::timeout(T, events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.event, "snapshot");
    let id = issued["id"].as_str().unwrap();
    let (code, _) = env.call("DELETE", &format!("/v1/tenants/{a}/tokens/{id}"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    // The stream says why and ends (heartbeats are 15 s apart: the end is
    // the recheck's, not a heartbeat's).
    let revoked = std::time::Instant::now();
    let mut last = None;
    while let Ok(Some(e)) = tokio::time::timeout(T, events.next()).await {
        last = Some(e.unwrap());
    }
    let last = last.expect("a last event");
    assert_eq!(last.event, "closed", "{last:?}");
    assert!(revoked.elapsed() < std::time::Duration::from_secs(10), "ended {:?} after revocation", revoked.elapsed());
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_cannot_forge_log_fields() {
    let env = Env::start().await;
    let forged = r#"x principal="tenant:other""#;
    let (_, headers, _) = env.call_full("GET", "/healthz", None, None, &[("x-request-id", forged)]).await;
    let id = headers["x-request-id"].to_str().unwrap();
    assert_ne!(id, forged);
    assert_eq!(id.len(), 36, "a new UUID: {id}");
    let (_, headers, _) = env.call_full("GET", "/healthz", None, None, &[("x-request-id", "req-42.a_b:c")]).await;
    assert_eq!(headers["x-request-id"], "req-42.a_b:c", "a safe id is kept");
    let long = "a".repeat(200);
    let (_, headers, _) = env.call_full("GET", "/healthz", None, None, &[("x-request-id", &long)]).await;
    assert_ne!(headers["x-request-id"].to_str().unwrap(), long);
    env.finish().await;
}
