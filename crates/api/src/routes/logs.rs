//! `GET /v1/tenants/{tenant}/instances/{instance}/logs`: a pod's log, read
//! through the API server (the kubelet's log of its container), so tenants
//! see their instances' output without Kubernetes credentials. `follow`
//! streams it until the container stops or the client goes.

use super::visible_instance;
use crate::auth::Principal;
use crate::problem::{Path, Problem, Query, Result};
use crate::state::{AppState, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use resources::Instance;
use resources::vocabulary::POD;
use resources::vocabulary::{INSTANCE, INSTANCE_NAMESPACE};
use serde::Deserialize;
use utoipa::IntoParams;

/// Most lines `tail` may ask for.
pub const MAX_TAIL: i64 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The template's pod (needed when the instance has more than one).
    pub pod: Option<String>,
    /// Only the last lines (1–100000; default: the whole log).
    #[param(minimum = 1, maximum = 100000)]
    pub tail: Option<i64>,
    /// Keep streaming new lines until the container stops.
    pub follow: Option<bool>,
    /// The log of the container's previous run (after a restart).
    pub previous: Option<bool>,
}

/// Which of the instance's pods: the one asked for, or its only one.
fn pod_name(inst: &Instance, asked: Option<&str>) -> Result<String> {
    let mut known: Vec<String> = inst.status.iter().flat_map(|s| s.pods.iter().map(|p| p.name.clone())).collect();
    known.sort();
    if let Some(p) = asked.filter(|p| !resources::is_dns_label(p)) {
        return Err(Problem::invalid("pod", format!("{p:?} is not a pod name (a DNS label)")));
    }
    match asked {
        Some(p) if known.is_empty() || known.iter().any(|k| k == p) => Ok(p.to_string()),
        Some(p) => Err(Problem::invalid(
            "pod",
            format!(
                "instance {:?} has no pod {p:?}; it has {}",
                inst.metadata.name.clone().unwrap_or_default(),
                known.join(", ")
            ),
        )),
        None if known.len() == 1 => Ok(known.remove(0)),
        None if known.is_empty() => {
            Err(Problem::conflict("not-started", "the instance has no pods yet; ask again once it is starting"))
        }
        None => Err(Problem::invalid("pod", format!("the instance has pods {}: say which one", known.join(", ")))),
    }
}

/// The pod object: in the tenant's namespace, or claimed from a warm pool.
async fn find_pod(s: &Shared, ns: &str, instance: &str, pod: &str) -> Result<Option<(String, String)>> {
    let own = ListParams::default().labels(&format!("{INSTANCE}={instance},{POD}={pod}"));
    if let Some(p) = Api::<Pod>::namespaced(s.client.clone(), ns).list_metadata(&own).await?.items.into_iter().next() {
        return Ok(Some((ns.to_string(), p.metadata.name.unwrap_or_default())));
    }
    let pool = &s.settings().pool_namespace;
    let claimed = ListParams::default().labels(&format!("{INSTANCE}={instance},{INSTANCE_NAMESPACE}={ns},{POD}={pod}"));
    let found = Api::<Pod>::namespaced(s.client.clone(), pool).list_metadata(&claimed).await?.items.into_iter().next();
    Ok(found.map(|p| (pool.clone(), p.metadata.name.unwrap_or_default())))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/instances/{instance}/logs", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path), LogQuery),
    description = "The log of one of the instance's pods, as plain text; with `follow=true`, streamed until the \
        container stops.",
    responses((status = 200, content_type = "text/plain", body = String, description = "The log"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The pod or its container has not started yet"),
        (status = 422, body = Problem)))]
pub async fn logs(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    if let Some(t) = q.tail
        && !(1..=MAX_TAIL).contains(&t)
    {
        return Err(Problem::bad_request(format!("tail must be between 1 and {MAX_TAIL}, not {t}")).field("tail"));
    }
    let inst = visible_instance(&s, &who, &tenant, &name).await?;
    let pod = pod_name(&inst, q.pod.as_deref())?;
    let Some((ns, object)) = find_pod(&s, &s.namespace(&tenant), &name, &pod).await? else {
        return Err(Problem::conflict("not-started", format!("pod {pod} of instance {name:?} does not exist (yet)")));
    };
    let lp = LogParams {
        tail_lines: q.tail,
        follow: q.follow.unwrap_or(false),
        previous: q.previous.unwrap_or(false),
        ..Default::default()
    };
    let api: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
    // The API server answers 400 for a container that has not started (or
    // has no previous run): the request is fine, the pod is not there yet.
    let refused = |e: kube::Error| match e {
        kube::Error::Api(a) if a.code == 400 => Problem::conflict("not-started", a.message),
        e => e.into(),
    };
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !lp.follow {
        return Ok((text, api.logs(&object, &lp).await.map_err(refused)?).into_response());
    }
    let lines = api.log_stream(&object, &lp).await.map_err(refused)?.lines();
    let body = Body::from_stream(lines.map_ok(|mut l| {
        l.push('\n');
        l
    }));
    Ok((text, body).into_response())
}
