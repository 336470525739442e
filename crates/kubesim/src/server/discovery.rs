//! Discovery (`/api`, `/apis`, group and resource lists), `/version`, health
//! endpoints, and the OpenAPI v3 index kubectl consults before validating.

use super::{Server, error_response, json_response};
use crate::error::ApiError;
use crate::registry::{Registry, ResourceDef};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn ok_text(s: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], s).into_response()
}

fn json_ok(v: Value) -> Response {
    json_response(StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default())
}

/// Groups and their served versions, in registry order (core group excluded).
fn groups(reg: &Registry) -> BTreeMap<String, Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, d) in reg.iter() {
        if d.group.is_empty() {
            continue;
        }
        let e = g.entry(d.group.clone()).or_default();
        for v in &d.versions {
            if !e.contains(v) {
                e.push(v.clone());
            }
        }
    }
    g
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Serves the fixed, non-resource paths; None when the path is a resource path.
pub fn serve(server: &Server, method: &Method, segs: &[&str], _headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET
        && matches!(segs.first(), Some(&"version" | &"healthz" | &"readyz" | &"livez" | &"openapi"))
    {
        return Some(error_response(&ApiError::method_not_allowed()));
    }
    let reg = || server.cluster.registry();
    Some(match segs {
        ["version"] => json_ok(json!({
            "major": server.cluster.config.kubernetes_version.major.to_string(),
            "minor": server.cluster.config.kubernetes_version.minor.to_string(),
            "gitVersion": format!("v{}.0-kubesim", server.cluster.config.kubernetes_version),
            "gitCommit": "kubesim",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": "linux/amd64"
        })),
        ["healthz"] | ["readyz"] | ["livez"] => ok_text("ok"),
        ["healthz" | "readyz" | "livez", _] => ok_text("ok"),
        ["api"] if method == Method::GET => json_ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]
        })),
        ["apis"] if method == Method::GET => {
            let gs: Vec<Value> = groups(&reg()).iter().map(|(n, v)| group_json(n, v)).collect();
            json_ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}))
        }
        ["apis", g] if method == Method::GET => match groups(&reg()).get(*g) {
            Some(v) => {
                let mut j = group_json(g, v);
                j["kind"] = json!("APIGroup");
                j["apiVersion"] = json!("v1");
                json_ok(j)
            }
            None => error_response(&ApiError::unknown_path()),
        },
        ["openapi", "v2"] => error_response(&ApiError::unknown_path()),
        ["openapi", "v3"] => {
            let mut paths = serde_json::Map::new();
            paths.insert("api/v1".into(), json!({"serverRelativeURL": "/openapi/v3/api/v1"}));
            for (g, vs) in groups(&reg()) {
                for v in vs {
                    paths.insert(
                        format!("apis/{g}/{v}"),
                        json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}")}),
                    );
                }
            }
            json_ok(json!({"paths": paths}))
        }
        ["openapi", "v3", rest @ ..] => openapi_doc(&reg(), rest, server.cluster.config.kubernetes_version),
        _ => return None,
    })
}

fn verbs(_d: &ResourceDef) -> Value {
    json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
}

/// `APIResourceList` for /api/v1 and /apis/{group}/{version}.
pub fn resource_list(server: &Server, segs: &[&str]) -> Option<Response> {
    let (group, version) = match segs {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let reg = server.cluster.registry();
    let mut resources = Vec::new();
    for (_, d) in reg.iter().filter(|(_, d)| d.group == group && d.serves(version)) {
        resources.push(json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": verbs(d),
            "shortNames": d.short_names,
            "categories": d.categories,
        }));
        if d.status_subresource {
            resources.push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}));
        }
        if group.is_empty() && d.plural == "pods" {
            resources.push(
                json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}),
            );
        }
        if group.is_empty() && d.plural == "namespaces" {
            resources.push(json!({"name": "namespaces/finalize", "singularName": "", "namespaced": false, "kind": "Namespace", "verbs": ["update"]}));
        }
    }
    if resources.is_empty() {
        return Some(super::page_not_found());
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json_ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})))
}

/// A minimal OpenAPI v3 document per group/version: one PATCH operation per
/// kind, tagged with its GVK and the `fieldValidation` parameter, which is what
/// kubectl reads to decide that the server validates fields itself.
fn openapi_doc(reg: &Registry, rest: &[&str], kube: crate::config::KubeVersion) -> Response {
    let (group, version) = match rest {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return error_response(&ApiError::unknown_path()),
    };
    let mut paths = serde_json::Map::new();
    for (_, d) in reg.iter().filter(|(_, d)| d.group == group && d.serves(version)) {
        let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
        let p = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{prefix}/{}/{{name}}", d.plural)
        };
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ]);
        paths.insert(
            p,
            json!({"patch": {
                "operationId": format!("patch{}", d.kind),
                "x-kubernetes-group-version-kind": {"group": d.group, "version": version, "kind": d.kind},
                "x-kubernetes-action": "patch",
                "parameters": params,
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    if paths.is_empty() {
        return error_response(&ApiError::unknown_path());
    }
    json_ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubesim)", "version": format!("v{kube}.0")},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
