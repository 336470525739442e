//! `paddock nodes`: nodes with their role, taint, allocatable resources and
//! Paddock pods; `paddock nodes set-role NODE ROLE [--taint EFFECT|none]`.

use crate::kubeconfig::ClusterArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use controller::labels::{MANAGED_BY, MANAGER, NODE_ROLE};
use controller::noderoles::ROLES;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(subcommand)]
    pub action: Option<NodesAction>,
}

#[derive(Subcommand, Debug)]
pub enum NodesAction {
    /// Label (and taint) a node with a role: vpn, task, shared or unmanaged.
    SetRole {
        /// The node's name.
        node: String,
        /// The role: vpn (VPN gateways), task (instances), shared (both) or unmanaged (remove the role).
        #[arg(value_parser = ROLES)]
        role: String,
        /// Taint effect to add with the role, or none.
        #[arg(long, default_value = "NoSchedule", value_parser = ["NoSchedule", "PreferNoSchedule", "NoExecute", "none"])]
        taint: String,
    },
}

pub async fn run(args: NodesArgs) -> Result<()> {
    let client = args.cluster.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    match args.action {
        None => list(&nodes, &Api::all(client)).await,
        Some(NodesAction::SetRole { node, role, taint }) => set_role(&nodes, &node, &role, &taint).await,
    }
}

async fn list(nodes: &Api<Node>, pods: &Api<Pod>) -> Result<()> {
    let nodes = nodes.list(&ListParams::default()).await.context("listing nodes")?.items;
    let ours = pods
        .list(&ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}")))
        .await
        .context("listing pods")?
        .items;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &ours {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<10} {:<18} {:>6} {:>10} {:>5} {:>13}",
        "NAME", "ROLE", "TAINT", "CPU", "MEMORY", "PODS", "PADDOCK-PODS"
    )?;
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let role = n.metadata.labels.as_ref().and_then(|l| l.get(NODE_ROLE)).cloned().unwrap_or_else(|| "-".into());
        let taint = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .and_then(|ts| ts.iter().find(|t| t.key == NODE_ROLE))
            .map(|t| t.effect.clone())
            .unwrap_or_else(|| "-".into());
        let alloc = n.status.as_ref().and_then(|s| s.allocatable.clone()).unwrap_or_default();
        let get = |k: &str| alloc.get(k).map(|q| q.0.clone()).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<24} {:<10} {:<18} {:>6} {:>10} {:>5} {:>13}",
            name,
            role,
            taint,
            get("cpu"),
            get("memory"),
            get("pods"),
            per_node.get(&name).copied().unwrap_or(0)
        )?;
    }
    Ok(())
}

async fn set_role(nodes: &Api<Node>, name: &str, role: &str, effect: &str) -> Result<()> {
    let Some(node) = nodes.get_opt(name).await.context("reading the node")? else {
        bail!("node {name:?} does not exist");
    };
    let mut taints: Vec<Taint> = node.spec.and_then(|s| s.taints).unwrap_or_default();
    taints.retain(|t| t.key != NODE_ROLE);
    if effect != "none" {
        taints.push(Taint { key: NODE_ROLE.into(), value: Some(role.into()), effect: effect.into(), time_added: None });
    }
    // A merge patch replaces the taint list as a whole, keeping other taints.
    let patch = serde_json::json!({"metadata": {"labels": {NODE_ROLE: role}}, "spec": {"taints": taints}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("updating node {name}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "node/{name}: role {role}, taint {}",
        if effect == "none" { "none".to_string() } else { format!("{NODE_ROLE}={role}:{effect}") }
    )?;
    Ok(())
}
