//! `paddock dev`: the whole platform on the embedded cluster, no cluster
//! needed — kubesim with task, vpn and shared nodes, the CRDs, the
//! controllers, the HTTP API with an admin token, the example templates and
//! a demo tenant. Ctrl-C stops it.

use crate::commands::platform::Platform;
use crate::commands::sim::shutdown_signal;
use anyhow::{Context, Result};
use clap::Args;
use controller::config::Settings;
use futures::FutureExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kubesim::{KubeSim, SimConfig, config};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A small realistic cluster: two task nodes, a VPN node and a shared node, each tainted for its role;
/// the VPN and shared nodes' kubelets allow the sysctl the VPN server needs.
pub const DEV_NODES: &str = "task-1,cpu=8,memory=32Gi,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
task-2,cpu=8,memory=32Gi,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
vpn-1,cpu=2,memory=4Gi,label=paddock.dev/node-role=vpn,taint=paddock.dev/node-role=vpn:NoSchedule,sysctl=net.ipv4.ip_forward;\
shared-1,cpu=4,memory=16Gi,label=paddock.dev/node-role=shared,taint=paddock.dev/node-role=shared:PreferNoSchedule,sysctl=net.ipv4.ip_forward";

const EXAMPLES: &[(&str, &str)] = &[
    ("ctf-web", include_str!("../../../../examples/templates/ctf-web.yaml")),
    ("ci-runner", include_str!("../../../../examples/templates/ci-runner.yaml")),
    ("notebook", include_str!("../../../../examples/templates/notebook.yaml")),
];

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Address of the embedded Kubernetes API (port 0 picks one).
    #[arg(long, env = "PADDOCK_DEV_LISTEN", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig of the embedded cluster.
    #[arg(long, env = "PADDOCK_DEV_KUBECONFIG_OUT", default_value = "paddock-dev.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Address of Paddock's HTTP API (port 0 picks one).
    #[arg(long, env = "PADDOCK_DEV_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub api_listen: SocketAddr,
    /// Admin token for the API (default: a new random one, printed).
    #[arg(long, env = "PADDOCK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Keep the embedded cluster's state across restarts in this file.
    #[arg(long, env = "PADDOCK_DEV_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// The Kubernetes version the embedded cluster emulates (1.28 to 1.33).
    #[arg(long, env = "PADDOCK_DEV_KUBERNETES_VERSION", default_value = "1.33", value_parser = config::KubeVersion::parse)]
    pub kubernetes_version: config::KubeVersion,
    /// The template policy (docs/security.md). Without --template-secrets,
    /// `paddock dev` lets templates read `ci-runner-token`, the Secret the
    /// ci-runner example reads.
    #[command(flatten)]
    pub template_policy: crate::settings::TemplatePolicyArgs,
}

/// The Secret the ci-runner example's env reads, which `paddock dev` allows
/// when no --template-secrets is given.
const EXAMPLE_SECRET: &str = "ci-runner-token";

async fn apply(client: &kube::Client, ar: &ApiResource, doc: serde_json::Value) -> Result<()> {
    let name = doc.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let ns = doc.pointer("/metadata/namespace").and_then(|v| v.as_str()).map(str::to_string);
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    api.patch(&name, &PatchParams::apply("paddock-dev").force(), &Patch::Apply(&doc))
        .await
        .with_context(|| format!("applying {} {name}", ar.kind))?;
    Ok(())
}

/// The `default` ClusterProfile of `paddock dev`: clusters on kubesim's
/// own Cluster API infrastructure provider (machines boot in half a second).
pub fn dev_cluster_profile() -> serde_json::Value {
    serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "ClusterProfile", "metadata": {"name": "default"},
        "spec": {"infrastructure": {
            "cluster": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimCluster"},
            "machine": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimMachineTemplate",
                "spec": {"flavor": "kubesim"}}},
            "versions": ["v1.29.0", "v1.30.0", "v1.31.0"], "maxWorkers": 5}})
}

/// Waits (on a watch, at most 30 s) until the demo tenant is Ready, so the
/// commands the banner suggests work the moment it is printed.
async fn demo_ready(client: &kube::Client) {
    let tenants: Api<resources::Tenant> = Api::all(client.clone());
    let ready = kube::runtime::wait::await_condition(tenants, "demo", |t: Option<&resources::Tenant>| {
        t.and_then(|t| t.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Ready")
    });
    if tokio::time::timeout(Duration::from_secs(30), ready).await.is_err() {
        tracing::warn!("the demo tenant is not Ready after 30 s; `paddock tenant get demo` says why");
    }
}

pub async fn run(args: DevArgs) -> Result<()> {
    let cfg = SimConfig {
        nodes: config::parse_nodes(DEV_NODES).map_err(|e| anyhow::anyhow!(e))?,
        state_file: args.state_file.clone(),
        kubernetes_version: args.kubernetes_version,
        ..SimConfig::default()
    };
    let stop = shutdown_signal().boxed().shared();
    let sim = KubeSim::start(cfg, args.listen).await?;
    // VPN client files point at this machine (NodePorts of the embedded cluster are not real).
    let mut settings = Settings { vpn_endpoint: Some("127.0.0.1".into()), ..Settings::default() };
    let mut policy = args.template_policy.clone();
    if policy.template_secrets.is_empty() {
        policy.template_secrets = vec![EXAMPLE_SECRET.to_string()];
    }
    policy.apply(&mut settings)?;
    let p = Platform::serve(
        sim.client().await?,
        settings,
        args.api_listen,
        args.admin_token.clone(),
        Some(api::ClusterAccess { server: sim.url(), ..Default::default() }),
        stop.clone(),
    )
    .await?;
    std::fs::write(&args.kubeconfig_out, sim.kubeconfig_yaml())
        .with_context(|| format!("cannot write the kubeconfig to {}", args.kubeconfig_out.display()))?;
    let client = p.client.clone();
    let (api_url, admin_token) = (p.api_url.clone(), p.admin_token.clone());

    let templates = ApiResource::erase::<resources::Template>(&());
    for (_, yaml) in EXAMPLES {
        let doc: serde_json::Value = serde_yaml_ng::from_str(yaml).context("an example template")?;
        apply(&client, &templates, doc).await?;
    }
    // Clusters as a service out of the box: kubesim plays Cluster API and
    // its own infrastructure provider.
    let profiles = ApiResource::erase::<resources::cluster::ClusterProfile>(&());
    apply(&client, &profiles, dev_cluster_profile()).await?;
    let tenants = ApiResource::erase::<resources::Tenant>(&());
    apply(
        &client,
        &tenants,
        serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "demo"},
            "spec": {"kind": "Team", "displayName": "Demo team", "quota": {"pods": 20, "instances": 5, "clusters": 2},
                "vpn": {"enabled": true, "clients": 3}}}),
    )
    .await?;
    demo_ready(&client).await;

    let kc = args.kubeconfig_out.display();
    let mut out = std::io::stdout().lock();
    writeln!(out, "paddock dev is running")?;
    writeln!(out, "  API:            {api_url}")?;
    writeln!(out, "  console:        {api_url}/ui/")?;
    writeln!(out, "  admin token:    {admin_token}")?;
    writeln!(out, "  Kubernetes API: {} (kubeconfig {kc})", sim.url())?;
    writeln!(
        out,
        "  nodes: task-1, task-2 (task), vpn-1 (vpn), shared-1 (shared); templates: ctf-web, ci-runner, notebook; tenant: demo"
    )?;
    // The absolute path, so the line works from any directory.
    let kc_abs = std::fs::canonicalize(&args.kubeconfig_out).unwrap_or_else(|_| args.kubeconfig_out.clone());
    writeln!(out, "try:")?;
    writeln!(out, "  export PADDOCK_URL={api_url} PADDOCK_TOKEN={admin_token}")?;
    writeln!(
        out,
        "  export KUBECONFIG={}   # kubectl, paddock nodes and paddock audit find the cluster",
        kc_abs.display()
    )?;
    writeln!(out, "  paddock instance start ctf-web --tenant demo --wait")?;
    writeln!(out, "  paddock instance list --tenant demo")?;
    writeln!(out, "  paddock events --tenant demo")?;
    writeln!(
        out,
        "(or kubectl --kubeconfig {kc} get tenants,templates,instances -A; paddock audit --kubeconfig {kc})"
    )?;
    writeln!(out, "Ctrl-C stops it.")?;
    drop(out);
    stop.await;
    p.finish().await?;
    sim.shutdown().await.map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!("stopped");
    Ok(())
}
