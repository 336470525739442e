//! Simulation settings: nodes, address ranges, image pull behaviour, history size.

use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A Kubernetes version (major.minor) kubesim emulates: what `/version`
/// reports and which CEL libraries CRD rules may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubeVersion {
    /// The oldest and newest versions kubesim emulates.
    pub const OLDEST: KubeVersion = KubeVersion::new(1, 28);
    pub const NEWEST: KubeVersion = KubeVersion::new(1, 33);

    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Reads `1.29` or `v1.29`, within [`Self::OLDEST`]..=[`Self::NEWEST`].
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches('v');
        let (major, minor) = t.split_once('.').ok_or_else(|| format!("{s:?} is not a version like 1.29"))?;
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            return Err(format!("{s:?} is not a version like 1.29"));
        };
        let v = Self { major, minor };
        if v < Self::OLDEST || v > Self::NEWEST {
            return Err(format!("kubesim emulates Kubernetes {} to {}, not {v}", Self::OLDEST, Self::NEWEST));
        }
        Ok(v)
    }
}

impl Default for KubeVersion {
    fn default() -> Self {
        Self::NEWEST
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// An IPv4 range in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = s.split_once('/').ok_or_else(|| format!("{s:?} is not in CIDR form (a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let bits: u8 =
            bits.parse().ok().filter(|b| *b <= 30).ok_or_else(|| format!("{s:?}: prefix length must be 0..=30"))?;
        let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
        Ok(Cidr { base: u32::from(ip) & mask, bits })
    }
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - self.bits) };
        u32::from(ip) & mask == self.base
    }
    /// The n-th address of the range (n=0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + (n % self.size()))
    }
    /// A free host address, probing from a seed.
    pub fn pick_free(&self, used: impl Fn(&str) -> bool, seed: u32) -> Option<String> {
        let hosts = self.size().saturating_sub(2);
        for k in 0..hosts {
            let n = 1 + (seed.wrapping_mul(2654435761).wrapping_add(k)) % hosts;
            let ip = self.nth(n).to_string();
            if !used(&ip) {
                return Some(ip);
            }
        }
        None
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.bits)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

/// A simulated node.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<TaintSpec>,
    #[serde(default = "default_cpu")]
    pub cpu: String,
    #[serde(default = "default_memory")]
    pub memory: String,
    #[serde(default = "default_pods")]
    pub pods: u32,
    #[serde(default)]
    pub unschedulable: bool,
    /// Unsafe sysctls its kubelet allows pods to set (its
    /// `--allowed-unsafe-sysctls`: names, or prefixes ending in `*`); the
    /// safe ones are always allowed. Upstream's default: none.
    #[serde(default)]
    pub allowed_unsafe_sysctls: Vec<String>,
}

fn default_cpu() -> String {
    "4".into()
}
fn default_memory() -> String {
    "16Gi".into()
}
fn default_pods() -> u32 {
    110
}

impl NodeSpec {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            taints: vec![],
            cpu: default_cpu(),
            memory: default_memory(),
            pods: default_pods(),
            unschedulable: false,
            allowed_unsafe_sysctls: vec![],
        }
    }
}

const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

fn parse_taint(s: &str) -> Result<TaintSpec, String> {
    let (kv, effect) = s.rsplit_once(':').ok_or_else(|| format!("taint {s:?} must be key[=value]:Effect"))?;
    if !EFFECTS.contains(&effect) {
        return Err(format!("taint {s:?}: effect must be one of NoSchedule, PreferNoSchedule, NoExecute"));
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    if key.is_empty() {
        return Err(format!("taint {s:?}: key is empty"));
    }
    Ok(TaintSpec { key: key.into(), value: value.into(), effect: effect.into() })
}

/// Parses `--nodes`: either a count (`3` → node-1..node-3) or `;`-separated
/// nodes, each `NAME[,cpu=4][,memory=16Gi][,pods=110][,label=k=v]...[,taint=k=v:Effect]...[,unschedulable]`.
pub fn parse_nodes(spec: &str) -> Result<Vec<NodeSpec>, String> {
    let spec = spec.trim();
    if let Ok(n) = spec.parse::<u32>() {
        if n == 0 || n > 5000 {
            return Err(format!("--nodes {n}: the count must be between 1 and 5000"));
        }
        return Ok((1..=n).map(|i| NodeSpec::named(&format!("node-{i}"))).collect());
    }
    let mut nodes: Vec<NodeSpec> = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.split(',').map(str::trim);
        let name = fields.next().unwrap_or("");
        if !crate::validation::dns1123_subdomain_errors(name).is_empty() {
            return Err(format!("node name {name:?} is not a valid DNS subdomain"));
        }
        if nodes.iter().any(|n| n.name == name) {
            return Err(format!("node {name:?} is listed twice"));
        }
        let mut node = NodeSpec::named(name);
        for f in fields {
            match f.split_once('=') {
                Some(("cpu", v)) => node.cpu = checked_quantity(name, "cpu", v)?,
                Some(("memory", v)) => node.memory = checked_quantity(name, "memory", v)?,
                Some(("pods", v)) => {
                    node.pods = v.parse().map_err(|_| format!("node {name:?}: pods={v:?} is not a whole number"))?
                }
                Some(("label", kv)) => {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    node.labels.insert(k.into(), v.into());
                }
                Some(("taint", t)) => node.taints.push(parse_taint(t)?),
                Some(("sysctl", v)) if !v.is_empty() => node.allowed_unsafe_sysctls.push(v.to_string()),
                None if f == "unschedulable" => node.unschedulable = true,
                _ => {
                    return Err(format!(
                        "node {name:?}: unknown setting {f:?} (expected cpu=, memory=, pods=, label=k=v, taint=k=v:Effect, sysctl=NAME or unschedulable)"
                    ));
                }
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err("--nodes is empty".into());
    }
    Ok(nodes)
}

fn checked_quantity(node: &str, what: &str, v: &str) -> Result<String, String> {
    match quantity::Quantity::parse(v) {
        Some(q) if q.0 > 0 => Ok(v.to_string()),
        _ => Err(format!("node {node:?}: {what}={v:?} is not a positive quantity")),
    }
}

/// Loads nodes from a YAML or JSON file (a list of [`NodeSpec`]).
pub fn load_nodes_file(path: &std::path::Path) -> Result<Vec<NodeSpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let nodes: Vec<NodeSpec> =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: not a list of nodes: {e}", path.display()))?;
    for n in &nodes {
        for t in &n.taints {
            if !EFFECTS.contains(&t.effect.as_str()) {
                return Err(format!(
                    "{}: node {:?}: taint effect {:?} must be NoSchedule, PreferNoSchedule or NoExecute",
                    path.display(),
                    n.name,
                    t.effect
                ));
            }
        }
        for (what, v) in [("cpu", &n.cpu), ("memory", &n.memory)] {
            checked_quantity(&n.name, what, v)?;
        }
    }
    Ok(nodes)
}

/// Image pull simulation: how long a pull takes, and which images fail.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    pub default_pull: Duration,
    /// Pull time when the image is already on the node.
    pub cached_pull: Duration,
    /// Per-image pull times, matched by exact image or by prefix ending in `*`.
    pub per_image: Vec<(String, Duration)>,
    /// Images matching this fail with ErrImagePull / ImagePullBackOff.
    pub bad_image: Regex,
    /// The user an image runs as (its `USER`), by exact image or by prefix
    /// ending in `*`, matched against the image as written and as the
    /// runtime names it (`docker.io/library/...`); the first match wins, and
    /// an image matching none runs as root, as most do. The kubelet refuses a
    /// container with `runAsNonRoot` and no `runAsUser` whose image runs as
    /// root (or as a user name it cannot check).
    pub users: Vec<(String, String)>,
}

impl ImagePolicy {
    pub fn pull_time(&self, image: &str, cached: bool) -> Duration {
        if cached {
            return self.cached_pull;
        }
        for (pat, d) in &self.per_image {
            let hit = match pat.strip_suffix('*') {
                Some(prefix) => image.starts_with(prefix),
                None => image == pat,
            };
            if hit {
                return *d;
            }
        }
        self.default_pull
    }

    /// The user `image` (`full`: as the runtime names it) runs as: "0"
    /// (root) unless [`ImagePolicy::users`] says another.
    pub fn user_of(&self, image: &str, full: &str) -> &str {
        let hit = |pat: &str, name: &str| match pat.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pat,
        };
        self.users.iter().find(|(pat, _)| hit(pat, image) || hit(pat, full)).map(|(_, u)| u.as_str()).unwrap_or("0")
    }
}

/// The users of common images that do not run as root (the rest do).
pub fn default_image_users() -> Vec<(String, String)> {
    [
        ("docker.io/nginxinc/nginx-unprivileged*", "101"),
        ("docker.io/bitnami/*", "1001"),
        ("gcr.io/distroless/*:nonroot", "65532"),
        ("gcr.io/distroless/*-nonroot", "65532"),
        ("quay.io/jupyter/*", "1000"),
        ("docker.io/jupyter/*", "1000"),
        ("ghcr.io/actions/actions-runner*", "runner"),
    ]
    .into_iter()
    .map(|(p, u)| (p.to_string(), u.to_string()))
    .collect()
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: Vec<NodeSpec>,
    pub service_cidr: Cidr,
    pub pod_cidr: Cidr,
    /// Watch history length (events); older resourceVersions get 410 Gone.
    pub history: usize,
    pub images: ImagePolicy,
    /// How long a terminating pod takes to stop (capped by its grace period).
    pub terminate_time: Duration,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Whether the simulated controllers (scheduler, kubelet, GC, ...) run.
    pub controllers: bool,
    pub state_file: Option<std::path::PathBuf>,
    /// What requests would cost a real API server (benchmarks); None: what
    /// kubesim costs.
    pub cost: Option<crate::cost::CostModel>,
    /// The Kubernetes version emulated.
    pub kubernetes_version: KubeVersion,
    /// When set, every request must carry `Authorization: Bearer <token>`
    /// (401 otherwise): the credential of a workload cluster's kubeconfig.
    pub bearer_token: Option<String>,
    /// Whether kubesim plays Cluster API (its CRDs, the core, kubeadm and
    /// an infrastructure provider of its own; see `sim::capi`). Only with
    /// the simulated controllers.
    pub cluster_api: bool,
    /// How long a simulated Cluster API machine takes to boot and join.
    pub machine_boot: Duration,
    /// Serve HTTPS with a certificate made at start (`KubeSim::ca_pem`).
    pub tls: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: vec![NodeSpec::named("node-1")],
            service_cidr: Cidr { base: u32::from(Ipv4Addr::new(10, 96, 0, 0)), bits: 12 },
            pod_cidr: Cidr { base: u32::from(Ipv4Addr::new(10, 244, 0, 0)), bits: 16 },
            history: 50_000,
            images: ImagePolicy {
                default_pull: Duration::from_millis(200),
                cached_pull: Duration::from_millis(5),
                per_image: vec![],
                bad_image: Regex::new(r"(^|/)(bad|invalid|doesnotexist)[^/]*$").expect("static regex"),
                users: default_image_users(),
            },
            terminate_time: Duration::from_millis(100),
            bookmark_interval: Duration::from_secs(15),
            controllers: true,
            state_file: None,
            cost: None,
            kubernetes_version: KubeVersion::NEWEST,
            bearer_token: None,
            cluster_api: true,
            machine_boot: Duration::from_millis(500),
            tls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs() {
        assert_eq!(parse_nodes("3").unwrap().len(), 3);
        let n = parse_nodes("task-1,cpu=2,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;vpn-1,unschedulable").unwrap();
        assert_eq!(n[0].cpu, "2");
        assert_eq!(n[0].labels["paddock.dev/node-role"], "task");
        assert_eq!(n[0].taints[0].effect, "NoSchedule");
        assert!(n[1].unschedulable);
        assert!(parse_nodes("a,cpu=x").unwrap_err().contains("cpu"));
        assert!(parse_nodes("a,taint=k:Never").unwrap_err().contains("effect"));
        assert!(parse_nodes("a;a").unwrap_err().contains("twice"));
        assert!(parse_nodes("a,colour=red").unwrap_err().contains("unknown setting"));
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.96.0.0/12").unwrap();
        assert!(c.contains("10.100.1.1".parse().unwrap()));
        assert!(!c.contains("10.112.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0").is_err());
    }
}
