//! Jupyter Server's activity API, as kubesim plays it for pods running a
//! Jupyter image (`…jupyter/…`, like `quay.io/jupyter/base-notebook`), on
//! the container's first port (8888 unless it says):
//!
//! - `GET /api`: the version (no token needed, as upstream; readiness probes use it);
//! - `GET /api/status`: `{started, last_activity, connections, kernels}`;
//! - any other request under `/api/` (kernels, contents, sessions …) is use:
//!   it moves `last_activity` to now, and answers `{}`.
//!
//! With `JUPYTER_TOKEN` in the container's env (a value, or a Secret's key),
//! every route but `/api` needs it, as `Authorization: token …` (or
//! `Bearer …`, or `?token=`); without it, 403 as upstream answers.

use crate::cluster::Cluster;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Jupyter Server's default port.
pub const PORT: u16 = 8888;

/// The container running a Jupyter image, if any.
pub fn container(pod: &Value) -> Option<&Value> {
    pod.pointer("/spec/containers")?.as_array()?.iter().find(|c| {
        c.get("image").and_then(Value::as_str).is_some_and(|i| i.starts_with("jupyter/") || i.contains("/jupyter/"))
    })
}

/// The container's first port, else 8888.
pub fn port(c: &Value) -> u16 {
    c.pointer("/ports/0/containerPort").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()).unwrap_or(PORT)
}

struct Server {
    started: Timestamp,
    last: Mutex<Timestamp>,
    token: Option<String>,
}

/// The app's routes for `pod`'s container `c`.
pub fn router(cluster: &Cluster, pod: &Value, c: &Value) -> Result<axum::Router, String> {
    let token = token(cluster, pod, c)?;
    let now = Timestamp::now();
    let server = Arc::new(Server { started: now, last: Mutex::new(now), token });
    Ok(axum::Router::new()
        .route("/api", get(|| async { Json(json!({"version": "2.14.2"})) }))
        .route("/api/status", get(status))
        .route("/api/{*rest}", any(used))
        .with_state(server))
}

/// `JUPYTER_TOKEN` of the container's env, resolved as the kubelet would.
fn token(cluster: &Cluster, pod: &Value, c: &Value) -> Result<Option<String>, String> {
    let Some(var) = c.get("env").and_then(Value::as_array).into_iter().flatten().find(|e| e["name"] == "JUPYTER_TOKEN")
    else {
        return Ok(None);
    };
    if let Some(v) = var.get("value").and_then(Value::as_str) {
        return Ok(Some(v.to_string()));
    }
    let (name, key) = (var.pointer("/valueFrom/secretKeyRef/name"), var.pointer("/valueFrom/secretKeyRef/key"));
    let (Some(name), Some(key)) = (name.and_then(Value::as_str), key.and_then(Value::as_str)) else {
        return Ok(None);
    };
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    super::secret_value(cluster, ns, name, key).map(Some)
}

fn allowed(s: &Server, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let Some(want) = &s.token else { return true };
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let given = header
        .strip_prefix("token ")
        .or_else(|| header.strip_prefix("Bearer "))
        .or(query.get("token").map(String::as_str));
    given == Some(want.as_str())
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Json(json!({"message": "Forbidden", "reason": null}))).into_response()
}

async fn status(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !allowed(&s, &headers, &q) {
        return forbidden();
    }
    let last = *s.last.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({"started": s.started.to_string(), "last_activity": last.to_string(), "connections": 0, "kernels": 0}))
        .into_response()
}

async fn used(State(s): State<Arc<Server>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if !allowed(&s, &headers, &q) {
        return forbidden();
    }
    *s.last.lock().unwrap_or_else(|p| p.into_inner()) = Timestamp::now();
    Json(json!({})).into_response()
}
