//! Resource endpoints: get, list, watch, create, update, patch, delete,
//! deletecollection, and the status / finalize / log / token subresources.

use super::render::{Shape, render_obj, render_value};
use super::{Query, Server, Target, error_response, json_response, table, watch};
use crate::cluster::{DeleteOpts, DeleteOutcome, ListOpts, Propagation, WriteOpts};
use crate::error::ApiError;
use crate::eventview;
use crate::patch::parse_body;
use crate::registry::{ResId, ResourceDef};
use crate::selector::Selector;
use crate::store::Obj;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// A create's or update's body: JSON or YAML, or protobuf for a built-in kind
/// (as client-go sends); CBOR is not served (upstream's is behind a feature gate).
fn decode_body(
    def: &ResourceDef,
    default_kind: (&str, &str),
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if crate::protobuf::is_protobuf(ct) {
        return crate::protobuf::decode(def, default_kind, body);
    }
    if ct.starts_with("application/cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml{}",
                if def.crd.is_none() { ", application/vnd.kubernetes.protobuf" } else { "" }
            ),
        ));
    }
    parse_body(body, true)
}

pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

fn manager(query: &Query, headers: &HeaderMap) -> Option<String> {
    query.get("fieldManager").map(str::to_string).or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
    })
}

fn write_opts(query: &Query, headers: &HeaderMap) -> Result<WriteOpts, ApiError> {
    let dry_run = match query.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    if let Some(fv) = query.get("fieldValidation")
        && !matches!(fv, "" | "Ignore" | "Warn" | "Strict")
    {
        return Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: {fv:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
        )));
    }
    Ok(WriteOpts {
        dry_run,
        field_manager: manager(query, headers),
        force: query.flag("force"),
        strict: query.get("fieldValidation") == Some("Strict"),
        ..WriteOpts::default()
    })
}

pub(crate) fn list_opts(def: &ResourceDef, query: &Query) -> Result<ListOpts, ApiError> {
    let label = Selector::parse_labels(query.get("labelSelector").unwrap_or(""))?;
    let field =
        Selector::parse_fields(query.get("fieldSelector").unwrap_or(""), &|k| crate::cluster::field_supported(def, k))?;
    let limit = match query.get("limit") {
        None | Some("") => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("limit: invalid value {l:?}: must be a non-negative integer"))
        })?),
    };
    Ok(ListOpts {
        label,
        field,
        limit,
        continue_token: query.get("continue").map(str::to_string),
        resource_version: query.get("resourceVersion").map(str::to_string),
        resource_version_match: query.get("resourceVersionMatch").filter(|s| !s.is_empty()).map(str::to_string),
    })
}

fn delete_opts(query: &Query, body: &Bytes) -> Result<DeleteOpts, ApiError> {
    let mut o = DeleteOpts::default();
    let b: Value = if body.is_empty() { json!({}) } else { parse_body(body, false)? };
    let prop = |s: &str| match s {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    };
    if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str).or(query.get("propagationPolicy")) {
        o.propagation = Some(prop(p)?);
    } else if let Some(orphan) = b.get("orphanDependents").and_then(Value::as_bool) {
        o.propagation = Some(if orphan { Propagation::Orphan } else { Propagation::Background });
    }
    let grace = b
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    if let Some(g) = grace {
        if g < 0 {
            return Err(ApiError::bad_request("gracePeriodSeconds: Invalid value: must be non-negative"));
        }
        o.grace_period = Some(g);
    }
    o.precondition_uid = b.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
    o.precondition_rv = b.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    let dry = b.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"))
        || query.get("dryRun") == Some("All");
    o.dry_run = dry;
    Ok(o)
}

fn list_body(def: &ResourceDef, version: &str, res: crate::cluster::ListResult, shape: Shape) -> Vec<u8> {
    let mut meta = json!({"resourceVersion": res.rv.to_string()});
    if let Some(c) = res.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = res.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let head = match shape {
        Shape::Whole => json!({"kind": def.list_kind, "apiVersion": def.api_version(version), "metadata": meta}),
        Shape::Metadata => {
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
        }
    };
    let head = serde_json::to_vec(&head).unwrap_or_default();
    // Splice the stored JSON of each item into the list without re-parsing.
    let mut out = Vec::with_capacity(head.len() + res.items.iter().map(|o| o.raw.len() + 1).sum::<usize>() + 16);
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, o) in res.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&shape.render(def, version, o));
    }
    out.extend_from_slice(b"]}");
    out
}

fn ok(body: Vec<u8>) -> Response {
    json_response(StatusCode::OK, body)
}

pub async fn serve(
    server: &Server,
    method: &Method,
    t: Target,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match serve_inner(server, method, t, query, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// The type a request names: where its objects are stored, the definition it
/// is served with, and the stored type's (they differ only for the
/// events.k8s.io view of core Events).
fn resolve(server: &Server, t: &Target) -> Result<(ResId, Arc<ResourceDef>, Arc<ResourceDef>), ApiError> {
    let reg = server.cluster.registry();
    let (id, def) = reg.lookup(&t.group, &t.version, &t.plural).ok_or_else(ApiError::unknown_path)?;
    // Namespaced types need a namespace for named access; cluster types must not have one.
    if !def.namespaced && t.namespace.is_some() {
        return Err(ApiError::unknown_path());
    }
    if def.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(ApiError::unknown_path());
    }
    if let Some(sub) = &t.sub {
        let ok = match sub.as_str() {
            "status" => def.status_subresource,
            "log" => def.group.is_empty() && def.plural == "pods",
            "finalize" => def.group.is_empty() && def.plural == "namespaces",
            "token" => def.group.is_empty() && def.plural == "serviceaccounts",
            _ => false,
        };
        if !ok {
            return Err(ApiError::unknown_path());
        }
    }
    if eventview::is_view(def) {
        // One store for both Event APIs, in the core form.
        let (core, core_def) = reg.find("", "events").ok_or_else(ApiError::unknown_path)?;
        return Ok((core, def.clone(), core_def.clone()));
    }
    Ok((id, def.clone(), def.clone()))
}

/// A create's or update's body in the stored form: an events.k8s.io Event is
/// checked in its own field names, then stored as a core Event.
fn stored_body(def: &ResourceDef, obj: Value, old: Option<&Value>) -> Result<Value, ApiError> {
    if !eventview::is_view(def) {
        return Ok(obj);
    }
    let old = old.map(eventview::to_v1);
    let errs = crate::validation::events_v1(&obj, old.as_ref());
    if !errs.is_empty() {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        return Err(ApiError::invalid(&def.group, &def.kind, name, errs));
    }
    Ok(eventview::to_core(&obj))
}

/// A non-apply PATCH of an events.k8s.io Event: applied to the object as that
/// API shows it, stored back in the core form (computed again if the object
/// changed meanwhile, unless the patch itself named a resourceVersion).
#[allow(clippy::too_many_arguments)]
fn patch_event_view(
    cluster: &crate::cluster::Cluster,
    id: ResId,
    def: &ResourceDef,
    version: &str,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
    opts: &WriteOpts,
) -> Result<Arc<Obj>, ApiError> {
    let pt = crate::patch::patch_type(def, content_type)?;
    if pt == crate::patch::PatchType::Apply {
        let core = eventview::to_core(&parse_body(body, true)?);
        let bytes = serde_json::to_vec(&core).unwrap_or_default();
        return cluster.patch(id, "v1", ns, name, None, content_type, &bytes, opts);
    }
    let view = crate::cluster::View {
        def,
        version,
        to_view: &eventview::to_v1,
        to_stored: &|patched, stored| stored_body(def, patched, Some(stored)),
    };
    cluster.patch_viewed(id, ns, name, None, &view, "v1", pt, body, opts)
}

async fn serve_inner(
    server: &Server,
    method: &Method,
    t: Target,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Field selectors are the stored type's (the core Event's for the events.k8s.io view).
    let (id, def, store_def) = resolve(server, &t)?;
    // What each subresource serves upstream (its REST storage's verbs).
    let allowed: &[Method] = match t.sub.as_deref() {
        None => &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        Some("status") => &[Method::GET, Method::PUT, Method::PATCH],
        Some("log") => &[Method::GET],
        Some("finalize") => &[Method::PUT],
        Some(_) => &[Method::POST],
    };
    if !allowed.contains(method) {
        return Err(ApiError::method_not_allowed());
    }
    let cluster = &server.cluster;
    let ns = t.namespace.clone().unwrap_or_default();
    let version = t.version.as_str();
    match (&t.name, method) {
        (None, &Method::GET) => {
            let opts = list_opts(&store_def, query)?;
            if query.flag("watch") {
                return watch::serve(server, id, def, t, query, opts, Shape::of(headers)).await;
            }
            let res = cluster.list(id, t.namespace.as_deref(), &opts)?;
            if wants_table(headers) {
                return Ok(ok(table::list_table(&def, version, &res, query)));
            }
            Ok(ok(list_body(&def, version, res, Shape::of(headers))))
        }
        (None, &Method::POST) => {
            if def.namespaced && t.namespace.is_none() {
                return Err(ApiError::unknown_path());
            }
            let opts = write_opts(query, headers)?;
            let obj = decode_body(&def, (&def.api_version(version), &def.kind), headers, &body)?;
            let obj = stored_body(&def, obj, None)?;
            let store_version = if eventview::is_view(&def) { "v1" } else { version };
            let created = cluster.create(id, store_version, &ns, obj, &opts)?;
            Ok(json_response(StatusCode::CREATED, render_obj(&def, version, &created)))
        }
        (None, &Method::DELETE) => {
            let lopts = list_opts(&store_def, query)?;
            let dopts = delete_opts(query, &body)?;
            let items = cluster.delete_collection(id, t.namespace.as_deref(), &lopts, &dopts)?;
            let rv = cluster.current_rv();
            let view = eventview::is_view(&def);
            let items: Vec<Value> = items.into_iter().map(|v| if view { eventview::to_v1(&v) } else { v }).collect();
            Ok(ok(serde_json::to_vec(&json!({"kind": def.list_kind, "apiVersion": def.api_version(version), "metadata": {"resourceVersion": rv.to_string()}, "items": items})).unwrap_or_default()))
        }
        (None, _) => Err(ApiError::method_not_allowed()),
        (Some(name), &Method::GET) => {
            let o = cluster.get(id, &ns, name)?;
            if t.sub.as_deref() == Some("log") {
                return super::logs::pod_log(&o.value(), name, query);
            }
            if wants_table(headers) {
                return Ok(ok(table::object_table(&def, version, &o, query)));
            }
            Ok(ok(Shape::of(headers).render(&def, version, &o)))
        }
        (Some(name), &Method::PUT) => {
            let opts = write_opts(query, headers)?;
            let obj = decode_body(&def, (&def.api_version(version), &def.kind), headers, &body)?;
            if eventview::is_view(&def) {
                let old = cluster.get(id, &ns, name)?.value();
                let obj = stored_body(&def, obj, Some(&old))?;
                let v = cluster.update(id, "v1", &ns, name, None, obj, &opts)?;
                return Ok(ok(render_obj(&def, version, &v)));
            }
            let v = cluster.update(id, version, &ns, name, t.sub.as_deref(), obj, &opts)?;
            Ok(ok(render_obj(&def, version, &v)))
        }
        (Some(name), &Method::PATCH) => {
            let opts = write_opts(query, headers)?;
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let existed = cluster.get(id, &ns, name).is_ok();
            let v = if eventview::is_view(&def) {
                patch_event_view(cluster, id, &def, version, &ns, name, ct, &body, &opts)?
            } else {
                cluster.patch(id, version, &ns, name, t.sub.as_deref(), ct, &body, &opts)?
            };
            let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(json_response(code, render_obj(&def, version, &v)))
        }
        (Some(name), &Method::DELETE) => {
            if t.sub.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = delete_opts(query, &body)?;
            match cluster.delete(id, &ns, name, &opts)? {
                DeleteOutcome::Deleted(v) if !def.return_deleted_object => {
                    let uid = v.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
                    let mut details = json!({"name": name, "kind": def.plural, "uid": uid});
                    if !def.group.is_empty() {
                        details["group"] = json!(def.group);
                    }
                    Ok(ok(serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})).unwrap_or_default()))
                }
                DeleteOutcome::Deleted(v) | DeleteOutcome::Pending(v) => Ok(ok(render_value(&def, version, v))),
            }
        }
        (Some(name), &Method::POST) if t.sub.as_deref() == Some("token") => {
            let request = decode_body(&def, ("authentication.k8s.io/v1", "TokenRequest"), headers, &body)?;
            super::token::create(cluster, &ns, name, request)
        }
        (Some(_), &Method::POST) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::method_not_allowed()),
    }
}
