//! `paddock cluster create|list|get|scale|upgrade|delete|kubeconfig|ssh-key`: a
//! tenant's own Kubernetes clusters through the API; `--wait` follows a
//! create or an upgrade until Running and a delete until gone.

use crate::client::output::{cell, print};
use crate::client::wait::{Step, WaitArgs, poll};
use crate::client::{Client, ClientArgs};
use anyhow::Result;
use api::routes::clusters::ClusterView;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;
use std::io::Write;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The tenant (default: the one a tenant token belongs to).
    #[arg(long, global = true, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster (Cluster API builds it; --wait until Running).
    Create {
        /// The cluster's name (1 to 40 lowercase letters, digits and '-').
        name: String,
        /// Worker machines.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Kubernetes version, e.g. v1.29.0 (default: the profile's first).
        #[arg(long)]
        version: Option<String>,
        /// Control-plane machines: 1, 3 or 5 (as the profile allows).
        #[arg(long, default_value_t = 1)]
        control_plane: u32,
        /// The ClusterProfile (default: `default`).
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The tenant's clusters.
    List,
    /// One cluster, with its health.
    Get {
        /// The cluster.
        name: String,
    },
    /// Change the number of workers.
    Scale {
        /// The cluster.
        name: String,
        /// The new number of workers.
        #[arg(long)]
        workers: u32,
    },
    /// Upgrade the cluster's Kubernetes version (the next minor at most; --wait until Running at it).
    Upgrade {
        /// The cluster.
        name: String,
        /// The version to go to, e.g. v1.30.0 (one the profile offers).
        #[arg(long)]
        version: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a cluster (--wait until its machines are gone).
    Delete {
        /// The cluster.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print the cluster's admin kubeconfig: `> kc.yaml`.
    Kubeconfig {
        /// The cluster.
        name: String,
    },
    /// Print the SSH private key of the `paddock` user on its machines (given once): `> key; chmod 600 key`.
    SshKey {
        /// The cluster.
        name: String,
    },
}

const HEADER: &[&str] = &["NAME", "PHASE", "VERSION", "CONTROL PLANE", "WORKERS", "READY NODES", "ENDPOINT", "MESSAGE"];

fn row(v: &ClusterView) -> Vec<String> {
    let ready = v.health.as_ref().map(|h| match h.provisioning_nodes {
        0 => format!("{}/{}", h.ready_nodes, h.desired_nodes),
        p => format!("{}/{} (+{p} booting)", h.ready_nodes, h.desired_nodes),
    });
    vec![
        v.name.clone(),
        v.phase.clone(),
        cell(v.version.clone()),
        v.control_plane.to_string(),
        v.workers.to_string(),
        cell(ready),
        cell(v.endpoint.clone()),
        cell(v.message.clone()),
    ]
}

fn base(t: &str) -> String {
    format!("/v1/tenants/{t}/clusters")
}

/// Waits for a cluster to be Running (at `version`, when given), or to fail:
/// Failed, or a write for it refused by the API server (waiting will not help).
async fn until_running(
    c: &Client,
    t: &str,
    name: &str,
    version: Option<&str>,
    w: WaitArgs,
    show: bool,
) -> Result<Option<ClusterView>> {
    let started = std::time::Instant::now();
    let last = poll(c, &format!("{}/{name}", base(t)), name, w.timeout, show, |v: Option<&ClusterView>| match v {
        None => Step::Fail(format!("{name} was deleted while it was being waited for")),
        Some(v) if v.phase == "Failed" || !v.applied => {
            Step::Fail(format!("{name} failed: {}", v.message.clone().unwrap_or_default()))
        }
        Some(v) if v.phase == "Running" && version.is_none_or(|want| v.version.as_deref() == Some(want)) => Step::Done,
        Some(v) => Step::Wait(v.phase.clone(), v.message.clone()),
    })
    .await?;
    if show {
        eprintln!("{name} is Running ({:.1} s)", started.elapsed().as_secs_f64());
    }
    Ok(last)
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let c = args.client.client()?;
    let t = args.client.tenant(&args.tenant)?;
    let out = args.client.output;
    let show = out == crate::client::output::Format::Table;
    match args.command {
        ClusterCommand::Create { name, workers, version, control_plane, profile, wait } => {
            let body = json!({"name": name, "workers": workers, "version": version, "controlPlane": control_plane,
                "profile": profile});
            let mut v: ClusterView = c.post(&base(&t), &body).await?;
            if wait.wait
                && let Some(now) = until_running(&c, &t, &name, None, wait, show).await?
            {
                v = now;
            }
            print(out, &v, HEADER, |v| vec![row(v)])
        }
        ClusterCommand::List => {
            let all: Vec<ClusterView> = c.list_all(&base(&t)).await?;
            print(out, &all, HEADER, |all| all.iter().map(row).collect())
        }
        ClusterCommand::Get { name } => {
            let v: ClusterView = c.get(&format!("{}/{name}", base(&t))).await?;
            print(out, &v, HEADER, |v| vec![row(v)])
        }
        ClusterCommand::Scale { name, workers } => {
            let req = c.request(Method::PATCH, &format!("{}/{name}", base(&t))).json(&json!({"workers": workers}));
            let v: ClusterView = c.send(req).await?;
            print(out, &v, HEADER, |v| vec![row(v)])
        }
        ClusterCommand::Upgrade { name, version, wait } => {
            let req = c.request(Method::PATCH, &format!("{}/{name}", base(&t))).json(&json!({"version": version}));
            let mut v: ClusterView = c.send(req).await?;
            if wait.wait
                && let Some(now) = until_running(&c, &t, &name, Some(&version), wait, show).await?
            {
                v = now;
            }
            print(out, &v, HEADER, |v| vec![row(v)])
        }
        ClusterCommand::Delete { name, wait } => {
            let v: ClusterView = c.delete(&format!("{}/{name}", base(&t))).await?;
            if wait.wait {
                poll(
                    &c,
                    &format!("{}/{name}", base(&t)),
                    &name,
                    wait.timeout,
                    show,
                    |v: Option<&ClusterView>| match v {
                        None => Step::Done,
                        Some(v) => Step::Wait(v.phase.clone(), v.message.clone()),
                    },
                )
                .await?;
            }
            print(out, &v, HEADER, |v| vec![row(v)])
        }
        ClusterCommand::Kubeconfig { name } => {
            let text = c.text(&format!("{}/{name}/kubeconfig", base(&t))).await?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
        ClusterCommand::SshKey { name } => {
            let req = c.request(Method::POST, &format!("{}/{name}/ssh-key", base(&t)));
            let text = c.send_text(req).await?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
    }
}
