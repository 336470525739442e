//! Tenant kubeconfigs: `POST /v1/tenants/{tenant}/kubeconfig` gives kubectl
//! access to the tenant's namespace as its ServiceAccount `tenant`.

mod common;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ADMIN, Env};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

fn claims(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).expect("base64url")).expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_kubeconfig_reaches_its_namespace_as_its_service_account() {
    let env = Env::start().await;
    let a = env.alpha.clone();
    let ns = env.state.namespace(&a);
    let path = format!("/v1/tenants/{a}/kubeconfig");

    // The tenant's own token may ask; the answer is a kubeconfig for its namespace.
    let (code, k) = env.call("POST", &path, Some(&env.alpha_token), Some(json!({"ttl": "2h"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{k}");
    assert_eq!(k["tenant"], json!(a));
    assert_eq!(k["namespace"], json!(ns));
    assert_eq!(k["serviceAccount"], json!("tenant"));
    let server = api::ClusterAccess::from_config(&env.tc.config).server;
    assert_eq!(k["server"], json!(server));
    let file = k["kubeconfig"].as_str().unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(file).expect("a kubeconfig kube-rs reads");
    let context = kc.contexts.iter().find(|c| Some(&c.name) == kc.current_context.as_ref()).expect("current context");
    let ctx = context.context.as_ref().unwrap();
    assert_eq!(ctx.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(), Some(server.as_str()));
    let raw: Value = serde_yaml_ng::from_str(file).unwrap();
    let token = raw["users"][0]["user"]["token"].as_str().expect("a bearer token");
    let c = claims(token);
    assert_eq!(c["sub"], json!(format!("system:serviceaccount:{ns}:tenant")));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 7200, "the ttl asked for");
    let expires = jiff::Timestamp::from_second(c["exp"].as_i64().unwrap()).unwrap();
    let said: jiff::Timestamp = k["expires"].as_str().unwrap().parse().unwrap();
    assert!((said.as_second() - expires.as_second()).abs() <= 1, "expires {said} is the token's exp {expires}");

    // kubectl's view: the client the file configures lists the tenant's pods.
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    assert_eq!(cfg.default_namespace, ns);
    let client = kube::Client::try_from(cfg).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default()).await.expect("the tenant may list its pods");
    if !env.tc.is_sim() {
        // A real API server enforces the Role: no Secrets.
        let secrets: Api<Secret> = Api::default_namespaced(client);
        match secrets.list(&ListParams::default()).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
            other => panic!("a tenant kubeconfig must not list Secrets: {other:?}"),
        }
    }

    // The default lifetime is an hour; admins may ask too.
    let (code, k) = env.call("POST", &path, Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::CREATED, "{k}");
    let raw: Value = serde_yaml_ng::from_str(k["kubeconfig"].as_str().unwrap()).unwrap();
    let c = claims(raw["users"][0]["user"]["token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);

    // Bad lifetimes and bodies name the field.
    for (body, field) in [
        (json!({"ttl": "5m"}), Some("ttl")),
        (json!({"ttl": "2d"}), Some("ttl")),
        (json!({"ttl": "soon"}), Some("ttl")),
        (json!({"ttl": "1h", "namespace": "kube-system"}), None),
    ] {
        let (code, p) = env.call("POST", &path, Some(ADMIN), Some(body.clone())).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        if let Some(f) = field {
            assert_eq!(p["field"], json!(f), "{body}: {p}");
        }
    }
    // A tenant that is not Ready has no kubeconfig yet, and the answer says why.
    let broken = format!("broken-{}", env.id);
    let tenants: Api<resources::Tenant> = Api::all(env.tc.client.clone());
    let t: resources::Tenant =
        serde_json::from_value(env.labelled(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": broken}, "spec": {"kind": "Team", "quota": {"cpu": "lots"}}})))
        .unwrap();
    tenants.create(&Default::default(), &t).await.unwrap();
    // As the API sees it (its watch of tenants).
    kubesim::testing::wait_until(common::T, "the API to see the tenant Failed", || async {
        env.call("GET", &format!("/v1/tenants/{broken}"), Some(ADMIN), None).await.1["status"]["phase"] == "Failed"
    })
    .await;
    let (code, p) = env.call("POST", &format!("/v1/tenants/{broken}/kubeconfig"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["type"], "https://paddock.dev/problems/tenant-not-ready");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("is not Ready (Failed: ") && detail.contains("spec.quota.cpu"), "{detail}");
    tenants.delete(&broken, &Default::default()).await.unwrap();

    // Another tenant's kubeconfig is as hidden as the tenant.
    let (code, _) =
        env.call("POST", &format!("/v1/tenants/{}/kubeconfig", env.beta), Some(&env.alpha_token), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    env.finish().await;
}
