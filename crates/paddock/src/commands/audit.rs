//! `paddock audit`: proves (or disproves) tenant isolation on a live cluster by
//! evaluating its NetworkPolicies: every path between tenants, every pod
//! reachable from outside the cluster, every pod no policy covers; and the
//! templates that relax Paddock's hardened pod (capabilities, another runtime
//! class, root, env read from Secrets). Exit code 1 when a cross-tenant path
//! exists.

use crate::kubeconfig::ClusterArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use kube::api::{Api, ListParams};
use netpol::audit::{Report, report};
use netpol::{Endpoint, Evaluator, Protocol};
use serde_json::json;
use std::io::Write;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output: a table for people, json for scripts (`--format` is the old name).
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value = "table")]
    pub format: Format,
    /// Namespace label that marks tenant namespaces; its value names the tenant.
    #[arg(long, default_value = resources::vocabulary::TENANT)]
    pub tenant_label: String,
    /// Treat ipBlocks as matching pod IPs too (as Calico does); by default they
    /// match only addresses outside the cluster (as Cilium does).
    #[arg(long)]
    pub ipblock_matches_pods: bool,
    /// Explain one path instead: the source (NAMESPACE/POD or an IP).
    #[arg(long, requires_all = ["to", "port"])]
    pub from: Option<String>,
    /// Explain one path: the destination (NAMESPACE/POD or an IP).
    #[arg(long, requires_all = ["from", "port"])]
    pub to: Option<String>,
    /// Explain one path: the destination port.
    #[arg(long, requires_all = ["from", "to"], value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Explain one path: TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP", value_parser = ["TCP", "UDP", "SCTP"])]
    pub protocol: String,
    /// The installation's runtime class (as the controller's --runtime-class),
    /// against which templates that choose another are reported.
    #[arg(long, env = "PADDOCK_RUNTIME_CLASS")]
    pub runtime_class: Option<String>,
}

/// Each template that relaxes the hardened pod, with what it relaxes.
type Relaxed = Vec<(String, Vec<String>)>;

/// The templates that relax the hardened pod; none when the cluster does not
/// serve Paddock's Template (a cluster without Paddock installed).
async fn relaxed_templates(client: &kube::Client, runtime_class: Option<&str>) -> Result<Relaxed> {
    let list = match Api::<resources::Template>::all(client.clone()).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e).context("listing templates"),
    };
    Ok(api::routes::audit::relaxed(&list, runtime_class))
}

async fn load(args: &AuditArgs) -> Result<(Evaluator, Relaxed)> {
    let client = args.cluster.client().await?;
    // The same evaluation as the API's GET /v1/audit.
    let ev = api::routes::audit::evaluator(&client, args.ipblock_matches_pods).await.map_err(anyhow::Error::msg)?;
    let relaxed = relaxed_templates(&client, args.runtime_class.as_deref()).await?;
    Ok((ev, relaxed))
}

fn explain(ev: &Evaluator, args: &AuditArgs, out: &mut dyn Write) -> Result<bool> {
    let find = |s: &str| -> Result<Endpoint> {
        if let Ok(ip) = s.parse() {
            return Ok(Endpoint::External(ip));
        }
        let Some((ns, name)) = s.split_once('/') else { bail!("{s:?} is neither NAMESPACE/POD nor an IP address") };
        ev.pod(ns, name).map(Endpoint::Pod).with_context(|| format!("pod {ns}/{name} not found (or not running)"))
    };
    let (Some(from), Some(to), Some(port)) = (&args.from, &args.to, args.port) else {
        bail!("--from, --to and --port go together")
    };
    let proto = Protocol::parse(&args.protocol).unwrap_or(Protocol::Tcp);
    let v = ev.check(find(from)?, find(to)?, port, proto);
    match args.format {
        Format::Json => writeln!(
            out,
            "{}",
            json!({"from": from, "to": to, "port": port, "protocol": args.protocol, "allowed": v.allowed, "explanation": v.explanation})
        )?,
        Format::Table => writeln!(out, "{}", v.explanation)?,
    }
    Ok(v.allowed)
}

fn render(r: &Report, relaxed: &Relaxed, format: Format, out: &mut dyn Write) -> Result<()> {
    if format == Format::Json {
        // The API's GET /v1/audit answer, the same type.
        let view = api::model::AuditView::new(r, relaxed.clone());
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>5} {:>20} {:>22} {:>15}",
        "TENANT", "PODS", "CROSS-TENANT PATHS", "REACHABLE FROM OUTSIDE", "WITHOUT POLICY"
    )?;
    for (t, x) in &r.tenants {
        writeln!(
            out,
            "{:<24} {:>5} {:>20} {:>22} {:>15}",
            t,
            x.pods,
            x.outbound.len(),
            x.external.len(),
            x.without_policy.len()
        )?;
    }
    let section = |title: &str, lines: Vec<String>, out: &mut dyn Write| -> Result<()> {
        if !lines.is_empty() {
            writeln!(out, "\n{title}:")?;
            for l in lines {
                writeln!(out, "  {l}")?;
            }
        }
        Ok(())
    };
    section(
        "Cross-tenant paths",
        r.tenants.values().flat_map(|x| x.outbound.iter().map(|(f, t, p)| format!("{f} -> {t}  {p}"))).collect(),
        out,
    )?;
    section(
        "Reachable from outside the cluster",
        r.tenants.values().flat_map(|x| x.external.iter().map(|(p, ports)| format!("{p}  {ports}"))).collect(),
        out,
    )?;
    section("Pods no NetworkPolicy selects", r.tenants.values().flat_map(|x| x.without_policy.clone()).collect(), out)?;
    section(
        "Templates that relax the hardened pod",
        relaxed.iter().flat_map(|(name, what)| what.iter().map(move |w| format!("{name}: {w}"))).collect(),
        out,
    )?;
    if r.tenants.is_empty() {
        writeln!(out, "\nno tenant namespaces (none is labelled with the tenant label)")?;
    }
    writeln!(
        out,
        "\n{}",
        if r.cross_tenant_paths == 0 {
            "isolated: no path crosses tenants".to_string()
        } else {
            format!("NOT isolated: {} cross-tenant paths", r.cross_tenant_paths)
        }
    )?;
    Ok(())
}

/// Runs the audit; returns whether the exit code should be 1.
pub async fn run(args: AuditArgs) -> Result<bool> {
    let (ev, relaxed) = load(&args).await?;
    let mut stdout = std::io::stdout().lock();
    if args.from.is_some() {
        let allowed = explain(&ev, &args, &mut stdout)?;
        return Ok(!allowed);
    }
    let r = report(&ev, &args.tenant_label);
    render(&r, &relaxed, args.format, &mut stdout)?;
    Ok(r.cross_tenant_paths > 0)
}
