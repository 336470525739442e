//! `paddock crds` (and the CRDs of `paddock manifests`): the CRDs made for
//! the Kubernetes version they go to (see `resources::kubernetes`). The
//! version is `--kubernetes-version`, else the cluster's when one can be
//! reached, else the oldest supported one, which every supported server takes.

use crate::kubeconfig::ClusterArgs;
use anyhow::{Result, anyhow};
use clap::Args;
use resources::kubernetes::{OLDEST, Version};

#[derive(Args, Debug, Clone, Default)]
pub struct VersionArgs {
    /// The Kubernetes version the CRDs are for (like 1.28); default: the
    /// cluster's, when it can be reached, else the oldest supported.
    #[arg(long, env = "PADDOCK_KUBERNETES_VERSION")]
    pub kubernetes_version: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct CrdArgs {
    #[command(flatten)]
    pub version: VersionArgs,
}

impl VersionArgs {
    /// The version to make the CRDs for.
    pub async fn resolve(&self) -> Result<Version> {
        if let Some(v) = &self.kubernetes_version {
            let version = Version::parse(v)
                .ok_or_else(|| anyhow!("--kubernetes-version {v:?}: not a Kubernetes version (like 1.28)"))?;
            if version < OLDEST {
                return Err(anyhow!("--kubernetes-version {v}: {}", version.support().unwrap_err()));
            }
            return Ok(version);
        }
        let reached = match self.cluster.client().await {
            Ok(c) => c.apiserver_version().await.ok().and_then(|i| Version::of_server(&i)),
            Err(_) => None,
        };
        Ok(match reached {
            Some(v) => {
                tracing::debug!(version = %v, "CRDs for the cluster's Kubernetes version");
                v
            }
            None => {
                tracing::debug!(
                    version = %OLDEST,
                    "no cluster reached: CRDs for the oldest supported Kubernetes, which every supported version \
                     takes (--kubernetes-version says another)"
                );
                OLDEST
            }
        })
    }
}

pub async fn run(args: CrdArgs) -> Result<()> {
    let version = args.version.resolve().await?;
    super::print(&resources::kubernetes::crds_yaml_for(version)?)
}
