//! The HTTP front: path routing in upstream's URL layout, query parsing,
//! content negotiation and `metav1.Status` error bodies.

mod discovery;
mod logs;
mod reachability;
mod render;
mod resources;
mod table;
mod token;
mod watch;

use crate::cluster::Cluster;
use crate::error::ApiError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct Server {
    pub cluster: Arc<Cluster>,
    pub shutdown: CancellationToken,
}

pub fn router(server: Server) -> Router {
    Router::new().fallback(handle).with_state(server)
}

pub(crate) fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, serde_json::to_vec(&e.status()).unwrap_or_default());
    if let Some(secs) = e.details.as_ref().and_then(|d| d.get("retryAfterSeconds")).and_then(|v| v.as_u64())
        && let Ok(v) = secs.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Parsed query string (last value wins, as Go's url.Values.Get takes the first; both rare).
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// What a request addresses.
pub(crate) struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

fn parse_target(segs: &[&str]) -> Option<Result<Target, ()>> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Some(Err(())),
    };
    let t = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        group: group.clone(),
        version: version.clone(),
        plural: plural.to_string(),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    };
    Some(Ok(match rest {
        [] => return None,
        ["namespaces", ns, sub] if group.is_empty() && (*sub == "status" || *sub == "finalize") => {
            t("namespaces", None, Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => t(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => t(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => t(plural, Some(ns), Some(name), Some(sub)),
        [plural] => t(plural, None, None, None),
        [plural, name] => t(plural, None, Some(name), None),
        [plural, name, sub] => t(plural, None, Some(name), Some(sub)),
        _ => return Some(Err(())),
    }))
}

async fn handle(State(server): State<Server>, req: Request) -> Response {
    if let Some(refused) = gate(&server, req.headers()) {
        return refused;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let method = parts.method.clone();
    let headers = parts.headers.clone();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError::new(413, "RequestEntityTooLarge", "the request body is too large"));
        }
    };
    // The path is parsed once for the metrics, the access record and the routing.
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let target = parse_target(&segs);
    let resource = match &target {
        Some(Ok(t)) => Some(t),
        _ => None,
    };
    let named = resource.map(|t| (t.group.as_ref(), t.plural.as_ref(), t.sub.as_deref().unwrap_or_default()));
    server.cluster.requests.count(verb(&method, resource.is_some_and(|t| t.name.is_none()), &query, &headers), named);
    if let Some(t) = resource {
        note_access(&server, &method, t, &query);
    }
    // Kept for a write that may create (read before `target` moves into the route).
    let may_create = matches!(method, Method::PATCH | Method::PUT);
    let rbac_resource = resource.filter(|_| may_create).map(|t| (t.group.to_string(), rbac_resource(t)));
    let started = std::time::Instant::now();
    let verb_name = verb(&method, resource.is_some_and(|t| t.name.is_none()), &query, &headers);
    let plural = resource.map(|t| t.plural.clone());
    if let Some(costs) = &server.cluster.costs {
        costs.charge(cost_kind(&server, verb_name, plural.as_deref())).await;
    }
    let resp = route(&server, &method, &segs, target, &query, &headers, body).await;
    if let Some(costs) = &server.cluster.costs
        && plural.as_deref() == Some("pods")
        && resp.status() == axum::http::StatusCode::CREATED
    {
        costs.pod_created();
    }
    // An apply or update that creates the object (201) is authorised for
    // `create` too, as upstream's patch and update handlers check it.
    if let Some((group, resource)) = rbac_resource
        && resp.status() == axum::http::StatusCode::CREATED
    {
        server.cluster.requests.note_access("create", &group, resource);
    }
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

/// A request refused before routing: during a simulated outage (503), or
/// without the bearer token the config asks for (401, upstream's body).
fn gate(server: &Server, headers: &HeaderMap) -> Option<Response> {
    if server.cluster.outage.load(std::sync::atomic::Ordering::Relaxed) {
        return Some(error_response(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the API server is down (a kubesim fault: kubesim.paddock.dev/api-server=Down)",
        )));
    }
    let want = server.cluster.config.bearer_token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        g.as_bytes().ct_eq(want.as_bytes()).into()
    });
    (!ok).then(|| error_response(&ApiError::new(401, "Unauthorized", "Unauthorized")))
}

/// What a request is to the cost model.
fn cost_kind(server: &Server, verb: &str, plural: Option<&str>) -> crate::cost::Kind {
    use crate::cost::Kind;
    match verb {
        "GET" => Kind::Get,
        "LIST" => Kind::List,
        "WATCH" => Kind::Watch,
        _ => Kind::Write { watchers: plural.map_or(0, |p| server.cluster.open_watches(p)) },
    }
}

/// Notes the request's RBAC attributes (verb, API group, resource and
/// subresource), as upstream's authorizer derives them.
fn note_access(server: &Server, method: &Method, t: &Target, query: &Query) {
    let named = t.name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return,
    };
    server.cluster.requests.note_access(verb, &t.group, rbac_resource(t));
}

/// The resource as RBAC names it: the plural, with its subresource.
fn rbac_resource(t: &Target) -> String {
    match &t.sub {
        Some(sub) => format!("{}/{sub}", t.plural),
        None => t.plural.clone(),
    }
}

/// The verb upstream's request metrics name a request with; `collection`:
/// the request addresses a resource type, not one object.
fn verb(method: &Method, collection: bool, query: &Query, headers: &HeaderMap) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "WATCH",
        Method::GET | Method::HEAD if collection => "LIST",
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => {
            let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if ct.starts_with("application/apply-patch") { "APPLY" } else { "PATCH" }
        }
        Method::DELETE if collection => "DELETECOLLECTION",
        Method::DELETE => "DELETE",
        _ => "",
    }
}

async fn route(
    server: &Server,
    method: &Method,
    segs: &[&str],
    target: Option<Result<Target, ()>>,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = discovery::serve(server, method, segs, headers) {
        return r;
    }
    if segs == ["metrics"] {
        if method != Method::GET {
            return error_response(&ApiError::method_not_allowed());
        }
        return ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], server.cluster.requests.exposition())
            .into_response();
    }
    if segs == ["sim", "v1", "access"] {
        if method != Method::GET {
            return error_response(&ApiError::method_not_allowed());
        }
        let list: Vec<serde_json::Value> = server
            .cluster
            .requests
            .access()
            .into_iter()
            .map(|(verb, group, resource)| serde_json::json!({"verb": verb, "group": group, "resource": resource}))
            .collect();
        return json_response(StatusCode::OK, serde_json::to_vec(&list).unwrap_or_default());
    }
    if let ["sim", "v1", "reachability", rest @ ..] = segs {
        if method != Method::GET {
            return error_response(&ApiError::method_not_allowed());
        }
        return reachability::serve(server, rest, query);
    }
    match target {
        None => discovery::resource_list(server, segs).unwrap_or_else(|| error_response(&ApiError::unknown_path())),
        Some(Err(())) => error_response(&ApiError::unknown_path()),
        Some(Ok(t)) if !serves_group_version(server, &t.group, &t.version) => page_not_found(),
        Some(Ok(t)) => resources::serve(server, method, t, query, headers, body).await,
    }
}

/// Whether any type is served at group/version.
pub(crate) fn serves_group_version(server: &Server, group: &str, version: &str) -> bool {
    server.cluster.registry().iter().any(|(_, d)| d.group == group && d.serves(version))
}

/// Upstream's answer for a path no API group or version serves: the HTTP
/// mux's plain-text 404, not a Status (a known group and version with an
/// unknown resource gets the Status).
pub(crate) fn page_not_found() -> Response {
    (StatusCode::NOT_FOUND, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], "404 page not found\n")
        .into_response()
}
