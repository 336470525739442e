//! kubesim conformance: upstream API server behaviour, exercised only through the
//! real `kube` client (and a few raw HTTP requests). Every test also runs against
//! a real cluster when PADDOCK_TEST_KUBECONFIG is set; tests that need kubesim's
//! knobs (nodes, pull times, history size) skip there with a message.

#![allow(clippy::field_reassign_with_default)]

mod admission;
mod api_machinery;
mod apply;
mod harness;
mod lifecycle;
mod protobuf;
mod reachability;
mod rules;
mod scheduling;
mod tokens;
mod watch;
mod workloads;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::core::Status;
use serde_json::json;

/// The API's Status from an error, or a panic naming what happened instead.
pub fn status<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub async fn configmap(api: &Api<ConfigMap>, name: &str, data: serde_json::Value) -> ConfigMap {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("valid configmap");
    api.create(&PostParams::default(), &cm).await.expect("create configmap")
}

/// A raw request; returns the status code and body.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_vec()))
        .expect("request");
    let resp = client.send(req).await.expect("send");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}
