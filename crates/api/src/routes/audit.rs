//! `/v1/audit`: tenant isolation as `paddock audit` proves it, for admins —
//! every path between tenants, every pod reachable from outside the
//! cluster, every pod no NetworkPolicy selects, the templates that relax the
//! hardened pod, and a tenant × tenant matrix of the cross-tenant paths;
//! `/v1/audit/explain` says why one path is allowed or not. Each audit lists
//! the cluster's namespaces, pods and NetworkPolicies (three requests): it
//! answers an admin's question, it is not on a hot path.

use crate::auth::Principal;
use crate::model::AuditView;
use crate::problem::{Json, Problem, Query, Result};
use crate::state::AppState;
use axum::extract::State;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use netpol::{Endpoint, Evaluator, Input, Options, Protocol};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The cluster's NetworkPolicies, namespaces and pods, ready to evaluate.
pub async fn evaluator(client: &kube::Client, ipblock_matches_pods: bool) -> std::result::Result<Evaluator, String> {
    let lp = ListParams::default();
    let what = |w: &str, e: kube::Error| format!("listing {w}: {}", controller::error::brief(&e));
    let namespaces = Api::<Namespace>::all(client.clone()).list(&lp).await.map_err(|e| what("namespaces", e))?.items;
    let pods = Api::<Pod>::all(client.clone()).list(&lp).await.map_err(|e| what("pods", e))?.items;
    let policies =
        Api::<NetworkPolicy>::all(client.clone()).list(&lp).await.map_err(|e| what("network policies", e))?.items;
    let input = Input::from_k8s(&namespaces, &pods, &policies)
        .map_err(|e| format!("cannot evaluate the cluster's network policies: {e}"))?;
    Ok(Evaluator::new(input, Options { ipblock_matches_pods }))
}

/// The templates that relax the hardened pod under the installation's
/// `runtime_class`, each with what it relaxes.
pub fn relaxed<'a>(
    templates: impl IntoIterator<Item = &'a resources::Template>,
    runtime_class: Option<&str>,
) -> Vec<(String, Vec<String>)> {
    templates
        .into_iter()
        .map(|t| (kube::ResourceExt::name_any(t), t.spec.relaxations(runtime_class)))
        .filter(|(_, r)| !r.is_empty())
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    /// Treat ipBlocks as matching pod IPs too (as Calico does); by default
    /// they match only addresses outside the cluster (as Cilium does).
    pub ipblock_matches_pods: Option<bool>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "paths", params(AuditQuery),
    description = "Tenant isolation on the cluster, from its NetworkPolicies (admins only).",
    responses((status = 200, body = AuditView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem),
        (status = 503, body = Problem, description = "The cluster's objects could not be read or evaluated")))]
pub async fn audit(State(s): State<AppState>, who: Principal, Query(q): Query<AuditQuery>) -> Result<Json<AuditView>> {
    who.admin("audit the cluster")?;
    let ev = evaluator(&s.client, q.ipblock_matches_pods.unwrap_or(false)).await.map_err(Problem::unavailable)?;
    let report = netpol::audit::report(&ev, resources::vocabulary::TENANT);
    let templates = s.templates.state();
    let relaxed = relaxed(templates.iter().map(|t| t.as_ref()), s.settings().runtime_class.as_deref());
    Ok(Json(AuditView::new(&report, relaxed)))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplainQuery {
    /// The source: NAMESPACE/POD or an IP address (required).
    pub from: Option<String>,
    /// The destination: NAMESPACE/POD or an IP address (required).
    pub to: Option<String>,
    /// The destination port, 1 to 65535 (required).
    pub port: Option<u16>,
    /// TCP (default), UDP or SCTP.
    pub protocol: Option<String>,
    pub ipblock_matches_pods: Option<bool>,
}

/// Whether one path is allowed, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    pub explanation: String,
}

#[utoipa::path(get, path = "/v1/audit/explain", tag = "audit", params(ExplainQuery),
    description = "Why one path is allowed or refused by the cluster's NetworkPolicies (admins only).",
    responses((status = 200, body = Explanation), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn explain(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<Explanation>> {
    who.admin("audit the cluster")?;
    let required = |v: Option<String>, field: &str| {
        v.filter(|v| !v.is_empty()).ok_or_else(|| Problem::bad_request(format!("{field} is required")).field(field))
    };
    let (from, to) = (required(q.from, "from")?, required(q.to, "to")?);
    let port = match q.port {
        Some(p) if p > 0 => p,
        _ => return Err(Problem::bad_request("port is required: 1 to 65535").field("port")),
    };
    let proto = match q.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse(p)
            .ok_or_else(|| Problem::bad_request(format!("protocol {p:?} is not TCP, UDP or SCTP")).field("protocol"))?,
    };
    let ev = evaluator(&s.client, q.ipblock_matches_pods.unwrap_or(false)).await.map_err(Problem::unavailable)?;
    let find = |field: &str, s: &str| -> Result<Endpoint> {
        if let Ok(ip) = s.parse() {
            return Ok(Endpoint::External(ip));
        }
        let Some((ns, name)) = s.split_once('/') else {
            return Err(Problem::bad_request(format!("{s:?} is neither NAMESPACE/POD nor an IP address")).field(field));
        };
        ev.pod(ns, name).map(Endpoint::Pod).ok_or_else(|| Problem::not_found("running pod", &format!("{ns}/{name}")))
    };
    let v = ev.check(find("from", &from)?, find("to", &to)?, port, proto);
    Ok(Json(Explanation { allowed: v.allowed, explanation: v.explanation }))
}
