//! `/v1/nodes`: the cluster's nodes with their Paddock roles (admins only).

use crate::auth::Principal;
use crate::model::NodeView;
use crate::problem::{Json, Path, Problem, Result};
use crate::state::AppState;
use axum::extract::State;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use resources::vocabulary::{MANAGED_BY, MANAGER, NODE_ROLE};
use std::collections::BTreeMap;

fn view(n: &Node, pods: &BTreeMap<String, u32>) -> NodeView {
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
        pods: pods.get(&n.name_any()).copied().unwrap_or(0),
    }
}

async fn paddock_pods(s: &AppState) -> Result<BTreeMap<String, u32>> {
    let lp = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
    let mut out = BTreeMap::new();
    for p in Api::<Pod>::all(s.client.clone()).list(&lp).await?.items {
        if let Some(n) = p.spec.and_then(|s| s.node_name) {
            *out.entry(n).or_insert(0) += 1;
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/nodes", tag = "nodes",
    responses((status = 200, body = Vec<NodeView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(State(s): State<AppState>, who: Principal) -> Result<Json<Vec<NodeView>>> {
    who.admin("list nodes")?;
    let pods = paddock_pods(&s).await?;
    let nodes = Api::<Node>::all(s.client.clone()).list(&ListParams::default()).await?;
    Ok(Json(nodes.items.iter().map(|n| view(n, &pods)).collect()))
}

#[utoipa::path(get, path = "/v1/nodes/{node}", tag = "nodes", params(("node" = String, Path)),
    responses((status = 200, body = NodeView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get(State(s): State<AppState>, who: Principal, Path(name): Path<String>) -> Result<Json<NodeView>> {
    who.admin("read nodes")?;
    super::named("node", &name)?;
    let n =
        Api::<Node>::all(s.client.clone()).get_opt(&name).await?.ok_or_else(|| Problem::not_found("node", &name))?;
    Ok(Json(view(&n, &paddock_pods(&s).await?)))
}
