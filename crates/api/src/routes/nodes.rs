//! `/v1/nodes`: the cluster's nodes with their Paddock roles, what their
//! pods request against what they can allocate, and how many of those pods
//! are Paddock's (admins only).

use crate::auth::Principal;
use crate::model::{NodeView, QuotaUse};
use crate::problem::{Json, Path, Problem, Result};
use crate::state::AppState;
use axum::extract::State;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use resources::usage::Usage;
use resources::vocabulary::{MANAGED_BY, MANAGER, NODE_ROLE};
use std::collections::BTreeMap;

/// What runs on each node: the requests of its pods that have not ended,
/// and how many of them are Paddock's.
#[derive(Default)]
struct OnNode {
    requested: Usage,
    paddock: u32,
}

fn view(n: &Node, on: &BTreeMap<String, OnNode>) -> NodeView {
    let here = on.get(&n.name_any());
    let spec = n.spec.as_ref();
    let status = n.status.as_ref();
    NodeView {
        name: n.name_any(),
        role: n.labels().get(NODE_ROLE).cloned(),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        schedulable: !spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect(),
        allocatable: status
            .and_then(|s| s.allocatable.as_ref())
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default(),
        requested: requested(n, here.map(|o| o.requested).unwrap_or_default()),
        pods: here.map_or(0, |o| o.paddock),
    }
}

/// A node's pods' requests of what it can allocate.
fn requested(n: &Node, u: Usage) -> Vec<QuotaUse> {
    let allocatable = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let of = |k: &str| allocatable.and_then(|a| a.get(k)).map(|q| q.0.clone()).unwrap_or_else(|| "0".into());
    vec![
        QuotaUse::of("cpu", u.cpu.render(false), of("cpu")),
        QuotaUse::of("memory", u.memory.render(true), of("memory")),
        QuotaUse::of("pods", u.pods.to_string(), of("pods")),
    ]
}

/// The pods on each node, from one list of the pods that have not ended (as
/// `kubectl describe node` counts them).
async fn on_nodes(s: &AppState) -> Result<BTreeMap<String, OnNode>> {
    let lp = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let mut out: BTreeMap<String, OnNode> = BTreeMap::new();
    for p in Api::<Pod>::all(s.client.clone()).list(&lp).await?.items {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
        let o = out.entry(node).or_default();
        o.requested = o.requested + Usage::of_pods([&p]);
        if p.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGER) {
            o.paddock = o.paddock.saturating_add(1);
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/nodes", tag = "nodes",
    responses((status = 200, body = Vec<NodeView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(State(s): State<AppState>, who: Principal) -> Result<Json<Vec<NodeView>>> {
    who.admin("list nodes")?;
    let on = on_nodes(&s).await?;
    let nodes = Api::<Node>::all(s.client.clone()).list(&ListParams::default()).await?;
    Ok(Json(nodes.items.iter().map(|n| view(n, &on)).collect()))
}

#[utoipa::path(get, path = "/v1/nodes/{node}", tag = "nodes", params(("node" = String, Path)),
    responses((status = 200, body = NodeView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get(State(s): State<AppState>, who: Principal, Path(name): Path<String>) -> Result<Json<NodeView>> {
    who.admin("read nodes")?;
    super::named("node", &name)?;
    let n =
        Api::<Node>::all(s.client.clone()).get_opt(&name).await?.ok_or_else(|| Problem::not_found("node", &name))?;
    Ok(Json(view(&n, &on_nodes(&s).await?)))
}
