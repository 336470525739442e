//! `paddock tenant create|list|get|delete` through the API.

use crate::client::ClientArgs;
use crate::client::output::{cell, print};
use anyhow::{Context, Result};
use api::model::{NewTenant, TenantView};
use clap::{Args, Subcommand};
use resources::TenantSpec;
use resources::tenant::TenantKind;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TenantArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant (admin token).
    Create {
        /// The tenant's name: a DNS label (its namespace is the prefix plus this).
        name: String,
        /// Team, User or Group, in any case (default: Team, or the file's).
        #[arg(long, value_enum, ignore_case = true)]
        kind: Option<Kind>,
        /// A name for people, shown by the API and in dashboards.
        #[arg(long)]
        display_name: Option<String>,
        /// Instances the tenant may run at once.
        #[arg(long)]
        instances: Option<u32>,
        /// Total cpu requests, e.g. 4.
        #[arg(long)]
        cpu: Option<String>,
        /// Total memory requests, e.g. 8Gi.
        #[arg(long)]
        memory: Option<String>,
        /// The whole spec from a YAML or JSON file (flags above then override it).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// List tenants (a tenant token sees its own).
    List,
    /// Show one tenant.
    Get {
        /// The tenant's name.
        name: String,
    },
    /// Delete a tenant and everything in its namespace (admin token).
    Delete {
        /// The tenant's name.
        name: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Team,
    User,
    Group,
}

const HEADER: &[&str] = &["NAME", "KIND", "PHASE", "NAMESPACE", "CREATED"];

fn row(t: &TenantView) -> Vec<String> {
    let st = t.status.as_ref();
    let phase = if t.deleting { Some("Terminating".to_string()) } else { st.and_then(|s| s.phase.clone()) };
    vec![
        t.name.clone(),
        format!("{:?}", t.spec.kind),
        cell(phase),
        cell(st.and_then(|s| s.namespace.clone())),
        cell(t.created.clone()),
    ]
}

pub fn read_yaml(path: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("-f {}: cannot read it", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("-f {}: not valid YAML or JSON", path.display()))
}

pub async fn run(args: TenantArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    match args.command {
        TenantCommand::Create { name, kind, display_name, instances, cpu, memory, file } => {
            let mut spec = match &file {
                Some(f) => {
                    let v = read_yaml(f)?;
                    let v = v.get("spec").cloned().unwrap_or(v);
                    super::decode_spec::<TenantSpec>(v)
                        .map_err(|e| anyhow::anyhow!("-f {}: not a tenant spec: {e}", f.display()))?
                }
                None => serde_json::from_value(serde_json::json!({"kind": "Team"}))?,
            };
            if let Some(kind) = kind {
                spec.kind = match kind {
                    Kind::Team => TenantKind::Team,
                    Kind::User => TenantKind::User,
                    Kind::Group => TenantKind::Group,
                };
            }
            spec.display_name = display_name.or(spec.display_name);
            spec.quota.instances = instances.or(spec.quota.instances);
            spec.quota.cpu = cpu.or(spec.quota.cpu);
            spec.quota.memory = memory.or(spec.quota.memory);
            let t: TenantView = c.post("/v1/tenants", &NewTenant { name, spec }).await?;
            print(out, &t, HEADER, |t| vec![row(t)])
        }
        TenantCommand::List => {
            let items: Vec<TenantView> = c.list_all("/v1/tenants").await?;
            print(out, &items, HEADER, |v| v.iter().map(row).collect())
        }
        TenantCommand::Get { name } => {
            let t: TenantView = c.get(&format!("/v1/tenants/{name}")).await?;
            print(out, &t, HEADER, |t| vec![row(t)])
        }
        TenantCommand::Delete { name } => {
            let t: TenantView = c.delete(&format!("/v1/tenants/{name}")).await?;
            print(out, &t, HEADER, |t| vec![row(t)])
        }
    }
}
