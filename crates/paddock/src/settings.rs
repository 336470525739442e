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
    /// Team VPNs: each tenant gets a /24 of this IPv4 range.
    #[arg(long, env = "PADDOCK_VPN_RANGE", default_value = "10.200.0.0/16")]
    pub vpn_range: String,
    /// Host or IP VPN clients connect to (with NodePort Services: a node's public address).
    #[arg(long, env = "PADDOCK_VPN_ENDPOINT")]
    pub vpn_endpoint: Option<String>,
    /// WireGuard server image (needs wg-quick and iptables).
    #[arg(long, env = "PADDOCK_VPN_IMAGE", default_value = "lscr.io/linuxserver/wireguard:1.0.20210914")]
    pub vpn_image: String,
    /// What VPN clients route through the tunnel: the cluster's pod and service CIDRs, comma-separated.
    #[arg(long, env = "PADDOCK_VPN_ALLOWED_IPS", value_delimiter = ',', default_value = "10.244.0.0/16,10.96.0.0/12")]
    pub vpn_allowed_ips: Vec<String>,
    /// DNS server for VPN clients (the cluster DNS Service IP), if any.
    #[arg(long, env = "PADDOCK_VPN_DNS")]
    pub vpn_dns: Option<String>,
    /// Namespace of the warm pools' pods.
    #[arg(long, env = "PADDOCK_POOL_NAMESPACE", default_value = "paddock-pool")]
    pub pool_namespace: String,
    /// URL personalised warm pods ask for their values
    /// (default: http://paddock-api.<system namespace>.svc:8080/v1/claim).
    #[arg(long, env = "PADDOCK_CLAIM_URL")]
    pub claim_url: Option<String>,
    /// Reconciles each controller (tenants, instances, warm pools) runs at once, 1 to 1024.
    #[arg(long, env = "PADDOCK_MAX_CONCURRENT_RECONCILES", default_value_t = 32)]
    pub max_concurrent_reconciles: u16,
    /// Longest lifetime an instance may ask for or be renewed to when its
    /// template sets no maxTtl (like 12h, 7d; at most 3650d).
    #[arg(long, env = "PADDOCK_MAX_INSTANCE_TTL", default_value = "7d")]
    pub max_instance_ttl: String,
    /// How long a Failed instance (its pods already removed, so its quota is
    /// free) is kept to be read before it is deleted (like 10m, 1h).
    #[arg(long, env = "PADDOCK_FAILED_RETENTION", default_value = "10m")]
    pub failed_retention: String,
    /// Only Tenants and Templates labelled KEY=VALUE are this installation's
    /// (the API labels those it creates), for several installations (or
    /// test runs) on one cluster; each needs its own --namespace-prefix,
    /// --system-namespace and --pool-namespace. Default: every one.
    #[arg(long, env = "PADDOCK_SCOPE", value_name = "KEY=VALUE")]
    pub scope: Option<String>,
    /// Image of tenants' file servers (Paddock's own image: they run `paddock files-server`).
    #[arg(long, env = "PADDOCK_FILES_IMAGE", default_value = concat!("paddock:", env!("CARGO_PKG_VERSION")))]
    pub files_image: String,
    /// How long a tenant's file server runs after the file browser's last
    /// request (10s to 1d).
    #[arg(long, env = "PADDOCK_FILES_IDLE", default_value = "15m")]
    pub files_idle: String,
    /// Largest file one upload through the file browser may be (like 512Mi, 4Gi; at most 1Ti).
    #[arg(long, env = "PADDOCK_FILES_MAX_UPLOAD", default_value = "1Gi")]
    pub files_max_upload: String,
    /// How often each tenant cluster's health is audited (1s to 1h).
    #[arg(long, env = "PADDOCK_CLUSTER_AUDIT", default_value = "30s")]
    pub cluster_audit: String,
    /// The wait after a cluster's first repair, doubling after each failed
    /// one (1s to 1h).
    #[arg(long, env = "PADDOCK_CLUSTER_REPAIR_BACKOFF", default_value = "30s")]
    pub cluster_repair_backoff: String,
    /// The longest wait between a cluster's repairs (1s to 1d).
    #[arg(long, env = "PADDOCK_CLUSTER_REPAIR_CAP", default_value = "10m")]
    pub cluster_repair_cap: String,
    /// Failed repairs in a row after which a cluster is Failed (1 to 100).
    #[arg(long, env = "PADDOCK_CLUSTER_REPAIR_LIMIT", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    pub cluster_repair_limit: u32,
    /// How long an unreachable cluster API server gets after its objects are
    /// re-applied before a control-plane rollout is asked for (0s to 1h).
    #[arg(long, env = "PADDOCK_CLUSTER_ROLLOUT_GRACE", default_value = "2m")]
    pub cluster_rollout_grace: String,
    #[command(flatten)]
    pub template_policy: TemplatePolicyArgs,
}

/// What templates may relax of the hardened pod (docs/security.md).
#[derive(Args, Debug, Clone, Default)]
pub struct TemplatePolicyArgs {
    /// Capabilities templates may add back, comma-separated (like NET_BIND_SERVICE; ALL allows any). Default: none.
    #[arg(long, env = "PADDOCK_TEMPLATE_CAPABILITIES", value_delimiter = ',')]
    pub template_capabilities: Vec<String>,
    /// Runtime classes templates may choose instead of --runtime-class, comma-separated. Default: none.
    #[arg(long, env = "PADDOCK_TEMPLATE_RUNTIME_CLASSES", value_delimiter = ',')]
    pub template_runtime_classes: Vec<String>,
    /// Secrets in tenant namespaces that templates' env may read, comma-separated. Default: none.
    #[arg(long, env = "PADDOCK_TEMPLATE_SECRETS", value_delimiter = ',')]
    pub template_secrets: Vec<String>,
}

impl TemplatePolicyArgs {
    /// Checks the flags and sets them in `settings`.
    pub fn apply(&self, settings: &mut Settings) -> Result<()> {
        for c in self.template_capabilities.iter().filter(|c| *c != "ALL") {
            if !resources::template::CAPABILITIES.contains(&c.as_str()) {
                bail!("--template-capabilities: {c:?} is not a Linux capability (like NET_BIND_SERVICE, without CAP_)");
            }
        }
        for c in &self.template_runtime_classes {
            dns_label("--template-runtime-classes", c, false)?;
        }
        for name in &self.template_secrets {
            if !name.split('.').all(resources::is_dns_label) || name.len() > 253 {
                bail!("--template-secrets: {name:?} is not a Secret name (a DNS subdomain)");
            }
            if resources::policy::PADDOCK_SECRETS.contains(&name.as_str()) {
                bail!("--template-secrets: {name:?} is Paddock's own Secret (the VPN's keys); templates never read it");
            }
        }
        settings.template_capabilities = self.template_capabilities.clone();
        settings.template_runtime_classes = self.template_runtime_classes.clone();
        settings.template_secrets = self.template_secrets.clone();
        Ok(())
    }
}

/// `--scope KEY=VALUE`, checked: a label key and a non-empty label value.
fn scope(raw: &str) -> Result<(String, String)> {
    let Some((k, v)) = raw.split_once('=') else {
        bail!("--scope {raw:?}: KEY=VALUE, a label (like paddock.dev/installation=staging)");
    };
    if let Some(why) = resources::labels::key_syntax_problem(k) {
        bail!("--scope {raw:?}: {k:?} is not a label key: {why}");
    }
    if v.is_empty() || !resources::labels::is_value(v) {
        bail!(
            "--scope {raw:?}: {v:?} is not a label value: 1 to 63 letters, digits, '-', '_' or '.', starting and \
             ending with a letter or digit"
        );
    }
    Ok((k.to_string(), v.to_string()))
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

/// A duration flag within `min..=max` (`bounds` says them for people).
fn duration_flag(flag: &str, value: &str, min: u64, max: u64, bounds: &str) -> Result<std::time::Duration> {
    resources::duration::parse_exact(value)
        .ok()
        .or_else(|| (value.trim() == "0s" || value.trim() == "0").then_some(std::time::Duration::ZERO))
        .filter(|d| (std::time::Duration::from_secs(min)..=std::time::Duration::from_secs(max)).contains(d))
        .ok_or_else(|| anyhow::anyhow!("--{flag} {value:?}: a duration from {bounds}"))
}

impl SettingsArgs {
    fn cluster_settings(&self) -> Result<controller::config::ClusterSettings> {
        let s = controller::config::ClusterSettings {
            audit: duration_flag("cluster-audit", &self.cluster_audit, 1, 3600, "1s to 1h (like 30s)")?,
            repair_backoff: duration_flag(
                "cluster-repair-backoff",
                &self.cluster_repair_backoff,
                1,
                3600,
                "1s to 1h (like 30s)",
            )?,
            repair_cap: duration_flag(
                "cluster-repair-cap",
                &self.cluster_repair_cap,
                1,
                86_400,
                "1s to 1d (like 10m)",
            )?,
            repair_limit: self.cluster_repair_limit,
            rollout_grace: duration_flag(
                "cluster-rollout-grace",
                &self.cluster_rollout_grace,
                0,
                3600,
                "0s to 1h (like 2m)",
            )?,
        };
        if s.repair_cap < s.repair_backoff {
            bail!("--cluster-repair-cap must be at least --cluster-repair-backoff");
        }
        Ok(s)
    }

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
        let range: ipnet::Ipv4Net = self
            .vpn_range
            .parse()
            .map_err(|_| anyhow::anyhow!("--vpn-range {:?}: not an IPv4 CIDR (like 10.200.0.0/16)", self.vpn_range))?;
        if range.prefix_len() > 24 {
            bail!("--vpn-range {range}: must hold at least one /24 (a prefix of 24 or less)");
        }
        for c in &self.vpn_allowed_ips {
            if c.parse::<ipnet::IpNet>().is_err() {
                bail!("--vpn-allowed-ips: {c:?} is not a CIDR (like 10.244.0.0/16)");
            }
        }
        if let Some(e) = &self.vpn_endpoint
            && (e.is_empty()
                || e.contains(char::is_whitespace)
                || e.contains('/')
                || e.contains(':') && !e.contains('['))
        {
            bail!("--vpn-endpoint {e:?}: a host name or IP address, without a port (the port comes from the Service)");
        }
        if let Some(d) = &self.vpn_dns
            && d.parse::<std::net::IpAddr>().is_err()
        {
            bail!("--vpn-dns {d:?}: not an IP address");
        }
        dns_label("--pool-namespace", &self.pool_namespace, false)?;
        if self.pool_namespace == self.system_namespace {
            bail!("--pool-namespace {:?}: must differ from --system-namespace", self.pool_namespace);
        }
        let claim_url = match &self.claim_url {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains(char::is_whitespace) => {
                bail!("--claim-url {u:?}: an http:// or https:// URL (the API's /v1/claim)")
            }
            Some(u) => u.clone(),
            None => format!("http://paddock-api.{}.svc:8080/v1/claim", self.system_namespace),
        };
        if !(1..=1024).contains(&self.max_concurrent_reconciles) {
            bail!("--max-concurrent-reconciles {}: must be 1 to 1024", self.max_concurrent_reconciles);
        }
        let max_instance_ttl = resources::duration::parse_exact(&self.max_instance_ttl).map_err(|_| {
            anyhow::anyhow!(
                "--max-instance-ttl {:?}: not a duration of at most 3650d (like 12h, 7d)",
                self.max_instance_ttl
            )
        })?;
        let failed_retention = resources::duration::parse_exact(&self.failed_retention).map_err(|_| {
            anyhow::anyhow!("--failed-retention {:?}: not a duration (like 10m, 1h)", self.failed_retention)
        })?;
        let scope = match &self.scope {
            None => None,
            Some(raw) => Some(scope(raw)?),
        };
        if self.files_image.trim().is_empty() || self.files_image.contains(char::is_whitespace) {
            bail!("--files-image {:?}: not an image reference", self.files_image);
        }
        let files_idle = resources::duration::parse_exact(&self.files_idle)
            .ok()
            .filter(|d| (std::time::Duration::from_secs(10)..=std::time::Duration::from_secs(86_400)).contains(d))
            .ok_or_else(|| {
                anyhow::anyhow!("--files-idle {:?}: a duration from 10s to 1d (like 15m)", self.files_idle)
            })?;
        let files_max_upload = quantity::Quantity::parse(&self.files_max_upload)
            .map(|q| q.0 / 1000)
            .filter(|b| (1..=1i128 << 40).contains(b))
            .and_then(|b| u64::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--files-max-upload {:?}: a size from 1 byte to 1Ti (like 512Mi)",
                    self.files_max_upload
                )
            })?;
        let clusters = self.cluster_settings()?;
        let mut settings = Settings {
            clusters,
            files_image: self.files_image.clone(),
            files_idle,
            files_max_upload,
            scope,
            failed_retention,
            max_instance_ttl,
            template_capabilities: Vec::new(),
            template_runtime_classes: Vec::new(),
            template_secrets: Vec::new(),
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            pool_namespace: self.pool_namespace.clone(),
            claim_url,
            namespace_prefix: self.namespace_prefix.clone(),
            system_namespace: self.system_namespace.clone(),
            runtime_class: self.runtime_class.clone(),
            image_pull_secret: self.image_pull_secret.clone(),
            strict_node_roles: self.strict_node_roles,
            default_cpu_request: self.default_cpu_request.clone(),
            default_memory_request: self.default_memory_request.clone(),
            vpn_range: range.to_string(),
            vpn_endpoint: self.vpn_endpoint.clone(),
            vpn_image: self.vpn_image.clone(),
            vpn_allowed_ips: self.vpn_allowed_ips.clone(),
            vpn_dns: self.vpn_dns.clone(),
        };
        self.template_policy.apply(&mut settings)?;
        Ok(settings)
    }
}
