//! `paddock nodes`: nodes with their role, taint, allocatable resources and
//! Paddock pods; `paddock nodes set-role NODE ROLE [--taint EFFECT|none]`.

use crate::client::output::{Format, cell, print};
use crate::kubeconfig::ClusterArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use controller::labels::{MANAGED_BY, MANAGER, NODE_ROLE};
use controller::noderoles::ROLES;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output of the list: a table for people, json or yaml for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
    #[command(subcommand)]
    pub action: Option<NodesAction>,
}

/// One node as the list shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRow {
    name: String,
    /// Its Paddock role (the `paddock.dev/node-role` label), if any.
    role: Option<String>,
    /// The effect of the role's taint, if it has one.
    taint: Option<String>,
    cpu: Option<String>,
    memory: Option<String>,
    pods: Option<String>,
    /// Paddock's pods scheduled there.
    paddock_pods: usize,
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
        None => list(&nodes, &Api::all(client), args.output).await,
        Some(NodesAction::SetRole { node, role, taint }) => set_role(&nodes, &node, &role, &taint).await,
    }
}

async fn list(nodes: &Api<Node>, pods: &Api<Pod>, out: Format) -> Result<()> {
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
    let rows: Vec<NodeRow> = nodes
        .into_iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let role = n.metadata.labels.as_ref().and_then(|l| l.get(NODE_ROLE)).cloned();
            let taint = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .and_then(|ts| ts.iter().find(|t| t.key == NODE_ROLE))
                .map(|t| t.effect.clone());
            let alloc = n.status.and_then(|s| s.allocatable).unwrap_or_default();
            let get = |k: &str| alloc.get(k).map(|q| q.0.clone());
            let paddock_pods = per_node.get(&name).copied().unwrap_or(0);
            NodeRow { name, role, taint, cpu: get("cpu"), memory: get("memory"), pods: get("pods"), paddock_pods }
        })
        .collect();
    let header = ["NAME", "ROLE", "TAINT", "CPU", "MEMORY", "PODS", "PADDOCK-PODS"];
    print(out, &rows, &header, |rows| {
        rows.iter()
            .map(|r| {
                let c = |v: &Option<String>| cell(v.as_deref());
                vec![
                    r.name.clone(),
                    c(&r.role),
                    c(&r.taint),
                    c(&r.cpu),
                    c(&r.memory),
                    c(&r.pods),
                    r.paddock_pods.to_string(),
                ]
            })
            .collect()
    })
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
