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
    /// Team VPNs: each tenant gets a /24 of this range.
    pub vpn_range: String,
    /// Host or IP VPN clients connect to (a node's public address, a DNS name).
    pub vpn_endpoint: Option<String>,
    /// WireGuard server image.
    pub vpn_image: String,
    /// What VPN clients route through the tunnel: the cluster's pod and service ranges.
    pub vpn_allowed_ips: Vec<String>,
    /// DNS server VPN clients use (the cluster DNS service), if any.
    pub vpn_dns: Option<String>,
    /// Namespace of warm pools (the VPN also reaches the tenant's claimed pods there).
    pub pool_namespace: String,
    /// Where personalised warm pods ask for their values (the API's `/v1/claim`).
    pub claim_url: String,
    /// Reconciles each controller (tenants, instances, pools) runs at once.
    /// Unbounded, a burst of thousands of instances opened thousands of
    /// connections to the API server at once and held their memory.
    pub max_concurrent_reconciles: u16,
    /// The longest lifetime an instance may ask for, or be renewed to, when
    /// its template sets no `maxTtl`.
    pub max_instance_ttl: std::time::Duration,
    /// How long a Failed instance (its pods already removed) is kept to be
    /// read before it is deleted.
    pub failed_retention: std::time::Duration,
    /// Capabilities templates may add back (`ALL`: any); none by default.
    pub template_capabilities: Vec<String>,
    /// Runtime classes templates may choose besides [`Settings::runtime_class`].
    pub template_runtime_classes: Vec<String>,
    /// Secrets in tenant namespaces that templates' env may read; none by default.
    pub template_secrets: Vec<String>,
    /// The label (key, value) that makes a Tenant or Template this
    /// installation's, when several share one cluster: the reconcilers and
    /// the API see only those carrying it, and the API puts it on those it
    /// creates. None: every Tenant and Template is this installation's.
    pub scope: Option<(String, String)>,
    /// The image of tenants' file servers: Paddock's own (`paddock files-server`).
    pub files_image: String,
    /// How long a tenant's file server runs after its last request.
    pub files_idle: std::time::Duration,
    /// The largest file the file browser takes in one upload, in bytes.
    pub files_max_upload: u64,
    /// How tenants' Kubernetes clusters are audited and repaired.
    pub clusters: ClusterSettings,
}

/// The cluster reconciler's health audit and repair schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// How often each Running cluster's health is audited.
    pub audit: std::time::Duration,
    /// The wait after the first repair; it doubles after each failed one.
    pub repair_backoff: std::time::Duration,
    /// The longest wait between repairs.
    pub repair_cap: std::time::Duration,
    /// Failed repairs in a row after which a cluster is `Failed`.
    pub repair_limit: u32,
    /// How long an unreachable API server is given after re-applying its
    /// objects before a control-plane rollout is asked for.
    pub rollout_grace: std::time::Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            audit: Duration::from_secs(30),
            repair_backoff: Duration::from_secs(30),
            repair_cap: Duration::from_secs(600),
            repair_limit: 5,
            rollout_grace: Duration::from_secs(120),
        }
    }
}

/// Default of [`Settings::max_instance_ttl`]: seven days.
pub const DEFAULT_MAX_INSTANCE_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

impl Settings {
    /// What templates may relax of the hardened pod.
    pub fn template_policy(&self) -> resources::policy::TemplatePolicy<'_> {
        resources::policy::TemplatePolicy {
            runtime_class: self.runtime_class.as_deref(),
            runtime_classes: &self.template_runtime_classes,
            capabilities: &self.template_capabilities,
            secrets: &self.template_secrets,
        }
    }

    /// The label selector of [`Settings::scope`], for watches and lists.
    pub fn scope_selector(&self) -> Option<String> {
        self.scope.as_ref().map(|(k, v)| format!("{k}={v}"))
    }

    /// Whether an object with these labels is this installation's
    /// ([`Settings::scope`]).
    pub fn in_scope(&self, labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
        match &self.scope {
            None => true,
            Some((k, v)) => labels.and_then(|l| l.get(k)) == Some(v),
        }
    }

    /// The controller configuration every Paddock controller runs with.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default().concurrency(self.max_concurrent_reconciles)
    }
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
            vpn_range: "10.200.0.0/16".into(),
            vpn_endpoint: None,
            vpn_image: "lscr.io/linuxserver/wireguard:1.0.20210914".into(),
            vpn_allowed_ips: vec!["10.244.0.0/16".into(), "10.96.0.0/12".into()],
            vpn_dns: None,
            pool_namespace: "paddock-pool".into(),
            claim_url: "http://paddock-api.paddock-system.svc:8080/v1/claim".into(),
            max_concurrent_reconciles: 32,
            max_instance_ttl: DEFAULT_MAX_INSTANCE_TTL,
            failed_retention: std::time::Duration::from_secs(600),
            template_capabilities: Vec::new(),
            template_runtime_classes: Vec::new(),
            template_secrets: Vec::new(),
            scope: None,
            files_image: concat!("paddock:", env!("CARGO_PKG_VERSION")).into(),
            files_idle: std::time::Duration::from_secs(15 * 60),
            files_max_upload: 1 << 30,
            clusters: ClusterSettings::default(),
        }
    }
}

/// How to make the system namespace `ns` exist, in words for a log line.
pub fn make_namespace(ns: &str) -> String {
    format!(
        "create it (`kubectl create namespace {ns}`, or apply `paddock manifests`), or name another with \
         --system-namespace"
    )
}
