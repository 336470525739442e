//! Controller settings (set from flags / PADDOCK_* variables by the binary).

/// What the reconcilers need to know about the installation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tenant namespaces are `<prefix><tenant>`.
    pub namespace_prefix: String,
    /// Where Paddock itself runs (its leases, its API).
    pub system_namespace: String,
    /// Runtime class for workloads (e.g. gvisor), if any.
    pub runtime_class: Option<String>,
    /// Image pull secret added to workloads, if any.
    pub image_pull_secret: Option<String>,
    /// Require node roles even when no node carries one.
    pub strict_node_roles: bool,
    /// Default requests for containers (used when a tenant does not say).
    pub default_cpu_request: String,
    pub default_memory_request: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace_prefix: "paddock-".into(),
            system_namespace: "paddock-system".into(),
            runtime_class: None,
            image_pull_secret: None,
            strict_node_roles: false,
            default_cpu_request: "100m".into(),
            default_memory_request: "128Mi".into(),
        }
    }
}
