//! Installation settings shared by the controller and (later) the API: every
//! one a flag and a `PADDOCK_*` variable, validated with the flag's name.

use anyhow::{Result, bail};
use clap::Args;
use controller::config::Settings;

#[derive(Args, Debug, Clone)]
pub struct SettingsArgs {
    /// Tenant namespaces are named <prefix><tenant>.
    #[arg(long, env = "PADDOCK_NAMESPACE_PREFIX", default_value = "paddock-")]
    pub namespace_prefix: String,
    /// Namespace Paddock runs in (leases, API).
    #[arg(long, env = "PADDOCK_SYSTEM_NAMESPACE", default_value = "paddock-system")]
    pub system_namespace: String,
    /// RuntimeClass for workloads, e.g. gvisor.
    #[arg(long, env = "PADDOCK_RUNTIME_CLASS")]
    pub runtime_class: Option<String>,
    /// Image pull secret (in each tenant namespace) for workload images.
    #[arg(long, env = "PADDOCK_IMAGE_PULL_SECRET")]
    pub image_pull_secret: Option<String>,
    /// Default cpu request for containers that state none.
    #[arg(long, env = "PADDOCK_DEFAULT_CPU_REQUEST", default_value = "100m")]
    pub default_cpu_request: String,
    /// Default memory request for containers that state none.
    #[arg(long, env = "PADDOCK_DEFAULT_MEMORY_REQUEST", default_value = "128Mi")]
    pub default_memory_request: String,
    /// Keep node-role placement even when no node has a paddock.dev/node-role label.
    #[arg(long, env = "PADDOCK_STRICT_NODE_ROLES")]
    pub strict_node_roles: bool,
}

fn dns_label(flag: &str, v: &str, allow_trailing_dash: bool) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !v.starts_with('-')
        && (allow_trailing_dash || !v.ends_with('-'));
    if !ok {
        bail!(
            "{flag} {v:?}: must be lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters"
        );
    }
    Ok(())
}

impl SettingsArgs {
    pub fn settings(&self) -> Result<Settings> {
        dns_label("--namespace-prefix", &self.namespace_prefix, true)?;
        if self.namespace_prefix.len() > 40 {
            bail!(
                "--namespace-prefix {:?}: at most 40 characters, to leave room for tenant names",
                self.namespace_prefix
            );
        }
        dns_label("--system-namespace", &self.system_namespace, false)?;
        for (flag, v) in [("--runtime-class", &self.runtime_class), ("--image-pull-secret", &self.image_pull_secret)] {
            if let Some(v) = v {
                dns_label(flag, v, false)?;
            }
        }
        for (flag, v) in [
            ("--default-cpu-request", &self.default_cpu_request),
            ("--default-memory-request", &self.default_memory_request),
        ] {
            if quantity::Quantity::parse(v).is_none_or(|q| q.0 <= 0) {
                bail!("{flag} {v:?}: not a positive quantity (like 100m, 0.5, 128Mi)");
            }
        }
        Ok(Settings {
            namespace_prefix: self.namespace_prefix.clone(),
            system_namespace: self.system_namespace.clone(),
            runtime_class: self.runtime_class.clone(),
            image_pull_secret: self.image_pull_secret.clone(),
            strict_node_roles: self.strict_node_roles,
            default_cpu_request: self.default_cpu_request.clone(),
            default_memory_request: self.default_memory_request.clone(),
        })
    }
}
