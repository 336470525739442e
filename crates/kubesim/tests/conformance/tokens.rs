//! Service account tokens: `POST serviceaccounts/NAME/token` (TokenRequest).

use super::{raw, status};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use kubesim::testing::TestCluster;
use serde_json::{Value, json};

fn request(spec: Value) -> TokenRequest {
    serde_json::from_value(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}))
        .unwrap()
}

/// The claims of a JWT (its middle part).
fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url claims")).expect("JSON claims")
}

#[tokio::test]
async fn token_requests_issue_service_account_tokens_as_upstream() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("tokens").await;
    let sas: Api<ServiceAccount> = Api::namespaced(tc.client.clone(), &ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
    let sa = sas.create(&PostParams::default(), &sa).await.unwrap();
    let pp = PostParams::default();

    // Defaults: an hour, the API server's audiences, name and namespace from the URL.
    let tr = sas.create_token_request("robot", &pp, &request(json!({}))).await.unwrap();
    assert_eq!(tr.metadata.name.as_deref(), Some("robot"));
    assert_eq!(tr.metadata.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(tr.spec.expiration_seconds, Some(3600));
    let auds = tr.spec.audiences.clone();
    assert!(!auds.is_empty(), "audiences default to the API server's");
    let st = tr.status.expect("the token is in the status");
    let c = claims(&st.token);
    assert_eq!(c["sub"], json!(format!("system:serviceaccount:{ns}:robot")));
    assert_eq!(c["kubernetes.io"]["namespace"], json!(ns));
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], json!("robot"));
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], json!(sa.metadata.uid));
    assert_eq!(c["aud"], json!(auds));
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    let expires = st.expiration_timestamp.0.as_second();
    assert!((expires - exp).abs() <= 1, "expirationTimestamp {expires} matches exp {exp}");

    // Audiences and a duration as asked.
    let tr = sas
        .create_token_request("robot", &pp, &request(json!({"audiences": ["vault"], "expirationSeconds": 7200})))
        .await
        .unwrap();
    let c = claims(&tr.status.unwrap().token);
    assert_eq!(c["aud"], json!(["vault"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 7200);

    // Bound to a Secret: its name and uid in the claims; a stale uid is a conflict.
    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), &ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "bind"}})).unwrap();
    let s = secrets.create(&pp, &s).await.unwrap();
    let bound = |uid: &str| {
        request(json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "bind", "uid": uid}}))
    };
    let tr = sas.create_token_request("robot", &pp, &bound(s.metadata.uid.as_deref().unwrap())).await.unwrap();
    let c = claims(&tr.status.unwrap().token);
    assert_eq!(c["kubernetes.io"]["secret"]["name"], json!("bind"));
    let e = status(sas.create_token_request("robot", &pp, &bound("00000000-0000-0000-0000-000000000000")).await);
    assert_eq!(e.code, 409, "{}", e.message);
    assert!(e.message.contains("does not match the UID in record"), "{}", e.message);
    let e = status(
        sas.create_token_request(
            "robot",
            &pp,
            &request(json!({"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}})),
        )
        .await,
    );
    assert_eq!(e.code, 400, "{}", e.message);
    assert!(e.message.contains("cannot bind token to object of type apps/v1, Kind=Deployment"), "{}", e.message);

    // Refusals.
    let e = status(sas.create_token_request("robot", &pp, &request(json!({"expirationSeconds": 60}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(
        e.message
            .contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{}",
        e.message
    );
    let e = status(sas.create_token_request("nobody", &pp, &request(json!({}))).await);
    assert_eq!(e.code, 404, "{}", e.message);
    assert!(e.message.contains("serviceaccounts \"nobody\" not found"), "{}", e.message);
    let mut named = request(json!({}));
    named.metadata.name = Some("other".into());
    let e = status(sas.create_token_request("robot", &pp, &named).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(
        e.message.contains("metadata.name: Invalid value: \"other\": must match the service account name"),
        "{}",
        e.message
    );

    // A token is only ever created: reading the subresource is not served.
    let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/robot/token");
    let (code, body) = raw(&tc.client, "GET", &path, "application/json", b"").await;
    assert_eq!(code, 405, "{body}");
    tc.finish().await;
}
