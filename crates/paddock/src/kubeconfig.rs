//! Which cluster to talk to: `--kubeconfig` (or `PADDOCK_KUBECONFIG`), else the
//! in-cluster service account, else `KUBECONFIG` / `~/.kube/config`; with an
//! optional `--context`. Every failure is one clear line.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: in-cluster service account, then KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "PADDOCK_KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long, env = "PADDOCK_CONTEXT", global = true)]
    pub context: Option<String>,
}

fn check_context(kc: &Kubeconfig, context: &Option<String>, source: &str) -> Result<()> {
    if let Some(c) = context
        && !kc.contexts.iter().any(|x| &x.name == c)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|x| x.name.as_str()).collect();
        bail!(
            "context {c:?} is not in {source} (it has: {})",
            if known.is_empty() { "none".into() } else { known.join(", ") }
        );
    }
    Ok(())
}

impl ClusterArgs {
    pub async fn config(&self) -> Result<kube::Config> {
        let opts = KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        if let Some(path) = &self.kubeconfig {
            let kc =
                Kubeconfig::read_from(path).map_err(|e| anyhow!("cannot use kubeconfig {}: {e}", path.display()))?;
            check_context(&kc, &self.context, &path.display().to_string())?;
            return kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| anyhow!("kubeconfig {}: {e}", path.display()));
        }
        if self.context.is_none()
            && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && let Ok(c) = kube::Config::incluster()
        {
            return Ok(c);
        }
        let kc = Kubeconfig::read().map_err(|e| {
            anyhow!("no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a pod ({e})")
        })?;
        check_context(&kc, &self.context, "the kubeconfig")?;
        kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| anyhow!("kubeconfig: {e}"))
    }

    /// A client, checked with one request so an unreachable cluster fails here.
    pub async fn client(&self) -> Result<kube::Client> {
        self.client_and_url().await.map(|(c, _)| c)
    }

    /// A checked client and the address of the cluster it talks to.
    pub async fn client_and_url(&self) -> Result<(kube::Client, String)> {
        let (client, cfg) = self.connect().await?;
        Ok((client, cfg.cluster_url.to_string()))
    }

    /// A checked client and the configuration it was built from.
    pub async fn connect(&self) -> Result<(kube::Client, kube::Config)> {
        let cfg = self.config().await?;
        let url = cfg.cluster_url.to_string();
        let client = kube::Client::try_from(cfg.clone()).context("cannot build a Kubernetes client")?;
        client.apiserver_version().await.map_err(|e| anyhow!("cannot reach the cluster at {url}: {e}"))?;
        Ok((client, cfg))
    }
}
