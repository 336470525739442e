//! `paddock sim`: kubesim as a standalone server for kubectl and other clients.

use anyhow::{Context, Result, bail};
use clap::Args;
use kubesim::{KubeSim, SimConfig, config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Address to listen on (plain HTTP; keep it on loopback).
    #[arg(long, env = "PADDOCK_SIM_LISTEN", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Write a kubeconfig for the simulated cluster to this file.
    #[arg(long, env = "PADDOCK_SIM_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Nodes: a count ("3") or "NAME[,cpu=4][,memory=16Gi][,pods=110][,label=k=v][,taint=k=v:Effect][,unschedulable];NAME2...".
    #[arg(long, env = "PADDOCK_SIM_NODES", conflicts_with = "nodes_file")]
    pub nodes: Option<String>,
    /// Nodes from a YAML file: a list of {name, labels, taints: [{key, value, effect}], cpu, memory, pods, unschedulable}.
    #[arg(long, env = "PADDOCK_SIM_NODES_FILE")]
    pub nodes_file: Option<PathBuf>,
    /// Keep state across restarts: loaded on start, written on clean shutdown.
    #[arg(long, env = "PADDOCK_SIM_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Simulated image pull time for images not yet on a node, in milliseconds.
    #[arg(long, env = "PADDOCK_SIM_PULL_MS", default_value_t = 200)]
    pub pull_ms: u64,
    /// Per-image pull times: "IMAGE=MS,PREFIX*=MS".
    #[arg(long, env = "PADDOCK_SIM_PULL_TIMES")]
    pub pull_times: Option<String>,
    /// Images matching this regular expression fail to pull (ErrImagePull).
    #[arg(long, env = "PADDOCK_SIM_BAD_IMAGE")]
    pub bad_image: Option<String>,
    /// What each request costs: `off` (kubesim's microseconds) or
    /// `realistic` (a real API server with etcd, for benchmarks).
    #[arg(long, env = "PADDOCK_SIM_COST_MODEL", value_enum, default_value_t = CostModelArg::Off)]
    pub cost_model: CostModelArg,
    /// The Kubernetes version to emulate (1.28 to 1.33): what `/version`
    /// reports and which CEL libraries CRD validation rules may call.
    #[arg(long, env = "PADDOCK_SIM_KUBERNETES_VERSION", default_value = "1.33", value_parser = config::KubeVersion::parse)]
    pub kubernetes_version: config::KubeVersion,
}

/// `--cost-model`: see `kubesim::cost`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum CostModelArg {
    /// Requests cost what kubesim spends on them (microseconds).
    #[default]
    Off,
    /// Requests cost what a real API server with etcd spends on them,
    /// calibrated on one (docs/performance.md).
    Realistic,
}

impl CostModelArg {
    pub fn model(self) -> Option<kubesim::cost::CostModel> {
        match self {
            CostModelArg::Off => None,
            CostModelArg::Realistic => Some(kubesim::cost::CostModel::realistic()),
        }
    }
}

pub fn build_config(args: &SimArgs) -> Result<SimConfig> {
    let mut cfg = SimConfig::default();
    if let Some(spec) = &args.nodes {
        cfg.nodes = config::parse_nodes(spec).map_err(|e| anyhow::anyhow!("--nodes: {e}"))?;
    }
    if let Some(path) = &args.nodes_file {
        cfg.nodes = config::load_nodes_file(path).map_err(|e| anyhow::anyhow!("--nodes-file: {e}"))?;
    }
    cfg.images.default_pull = Duration::from_millis(args.pull_ms);
    cfg.cost = args.cost_model.model();
    cfg.kubernetes_version = args.kubernetes_version;
    if let Some(list) = &args.pull_times {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((image, ms)) = item.rsplit_once('=') else {
                bail!("--pull-times: {item:?} must be IMAGE=MILLISECONDS");
            };
            let ms: u64 = ms
                .parse()
                .with_context(|| format!("--pull-times: {ms:?} in {item:?} is not a number of milliseconds"))?;
            cfg.images.per_image.push((image.to_string(), Duration::from_millis(ms)));
        }
    }
    if let Some(re) = &args.bad_image {
        cfg.images.bad_image =
            regex::Regex::new(re).with_context(|| format!("--bad-image: {re:?} is not a valid regular expression"))?;
    }
    cfg.state_file = args.state_file.clone();
    Ok(cfg)
}

pub async fn run(args: SimArgs) -> Result<()> {
    let cfg = build_config(&args)?;
    let sim = KubeSim::start(cfg, args.listen).await?;
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, sim.kubeconfig_yaml())
            .with_context(|| format!("cannot write kubeconfig to {}", path.display()))?;
        tracing::info!(path = %path.display(), "kubeconfig written");
    }
    tracing::info!(url = %sim.url(), "kubesim ready; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!("shutting down");
    sim.shutdown().await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
