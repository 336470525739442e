//! Clusters as a service: a tenant's own Kubernetes cluster (`Cluster`,
//! namespaced in the tenant's namespace) built by Cluster API from an
//! installation's `ClusterProfile` (cluster-scoped, admins only), which says
//! how clusters are built here: the infrastructure provider's templates,
//! versions, limits, networking, the CNI and the security-group rules.

use crate::FieldProblem;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The profile a cluster names when it names none.
pub const DEFAULT_PROFILE: &str = "default";
/// Longest cluster name: Cluster API names machines `<cluster>-md-<hash>-<rand>`.
pub const MAX_NAME: usize = 40;
/// Most workers any profile may allow.
pub const MAX_WORKERS: u32 = 100;

fn default_profile() -> String {
    DEFAULT_PROFILE.into()
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "Cluster",
    plural = "clusters",
    shortname = "pcl",
    namespaced,
    status = "ClusterStatus",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".status.version"}"#,
    printcolumn = r#"{"name": "Workers", "type": "integer", "jsonPath": ".spec.workers"}"#,
    printcolumn = r#"{"name": "Ready", "type": "integer", "jsonPath": ".status.health.readyNodes"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The ClusterProfile it is built from.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Kubernetes version, e.g. v1.29.0 (default: the profile's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Control-plane machines: 1, 3 or 5.
    #[serde(default = "one")]
    pub control_plane: u32,
    /// Worker machines.
    #[serde(default = "two")]
    pub workers: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Provisioning, Running, Degraded, Repairing, Deleting or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Accepted, Provisioned, Healthy, and Cluster API's own (mirrored with
    /// the prefix `CAPI`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Kubernetes version being run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The API server's address (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ClusterHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repairs: Option<Repairs>,
    /// The rules every node needs open, and where they were rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<SecurityGroupsStatus>,
    /// The SSH public key installed for the `paddock` user on every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// Whether the private key was handed out (it can be, once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ssh_key_retrieved: bool,
    /// Whether Paddock holds the cluster's kubeconfig (encrypted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kubeconfig_ready: bool,
}

/// What the last health audit found.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// Healthy, Unreachable or Unknown (no kubeconfig yet).
    pub api_server: String,
    pub ready_nodes: u32,
    pub desired_nodes: u32,
    /// Machines Cluster API is still bringing up (phase Pending,
    /// Provisioning or Provisioned): a scale or an upgrade under way, not a
    /// fault (a machine that never gets a node is the MachineHealthCheck's).
    #[serde(default)]
    pub provisioning_nodes: u32,
    /// Since when machines have been being provisioned without a break:
    /// after 20 minutes the shortfall counts as a fault again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Repairs since the cluster was last healthy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repairs {
    pub attempts: u32,
    /// What was repaired last: ApiServer, Nodes or Drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_repair: Option<String>,
    /// When the next repair may start (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_repair: Option<String>,
    /// When the API server was first found unreachable (for the rollout grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<String>,
    /// When a control-plane rollout was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupsStatus {
    pub rules: Vec<SecurityGroupRule>,
    /// Where they were rendered into the provider's spec, or why not.
    pub rendered: String,
}

/// A port range every node must have open.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRule {
    pub name: String,
    /// TCP or UDP.
    pub protocol: String,
    pub port_min: u16,
    pub port_max: u16,
}

fn rule(name: &str, protocol: &str, port_min: u16, port_max: u16) -> SecurityGroupRule {
    SecurityGroupRule { name: name.into(), protocol: protocol.into(), port_min, port_max }
}

/// What every cluster built here needs open between its nodes.
pub fn default_rules() -> Vec<SecurityGroupRule> {
    vec![
        rule("kubernetes-api", "TCP", 6443, 6443),
        rule("calico-vxlan", "UDP", 4789, 4789),
        rule("calico-bgp", "TCP", 179, 179),
        rule("kubelet", "TCP", 10250, 10250),
        rule("nodeports-tcp", "TCP", 30000, 32767),
        rule("nodeports-udp", "UDP", 30000, 32767),
    ]
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "ClusterProfile",
    plural = "clusterprofiles",
    printcolumn = r#"{"name": "Provider", "type": "string", "jsonPath": ".spec.infrastructure.cluster.kind"}"#,
    printcolumn = r#"{"name": "Versions", "type": "string", "jsonPath": ".spec.versions"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileSpec {
    /// The infrastructure provider's objects, copied for each cluster.
    pub infrastructure: Infrastructure,
    /// Kubernetes versions clusters may run; the first is the default.
    #[serde(default = "default_versions")]
    pub versions: Vec<String>,
    /// Most workers a cluster may have.
    #[serde(default = "ten")]
    pub max_workers: u32,
    /// Control-plane sizes allowed (of 1, 3, 5).
    #[serde(default = "default_control_planes")]
    pub control_planes: Vec<u32>,
    #[serde(default)]
    pub network: ClusterNetwork,
    /// A ConfigMap in Paddock's system namespace holding the CNI manifest
    /// (Calico in VXLAN mode is the expected one), applied to every cluster
    /// through a ClusterResourceSet. None: no CNI is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_config_map: Option<String>,
    /// The ports every node needs open.
    #[serde(default = "default_rules")]
    pub security_group_rules: Vec<SecurityGroupRule>,
    /// How long a node may be unhealthy before its machine is replaced
    /// (the MachineHealthCheck's timeout).
    #[serde(default = "five_minutes")]
    pub node_unhealthy_timeout: String,
}

fn default_versions() -> Vec<String> {
    vec!["v1.29.0".into()]
}
fn ten() -> u32 {
    10
}
fn default_control_planes() -> Vec<u32> {
    vec![1, 3]
}
fn five_minutes() -> String {
    "5m".into()
}

/// The provider's objects: an infrastructure cluster and a machine template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Infrastructure {
    pub cluster: ProviderObject,
    /// The machine template (its `spec`), used for control plane and workers.
    pub machine: ProviderObject,
    /// Another machine template spec for workers (default: `machine`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_machine: Option<ProviderObject>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderObject {
    /// e.g. infrastructure.cluster.x-k8s.io/v1beta1
    pub api_version: String,
    /// e.g. DockerCluster, OpenStackCluster; for machines the template kind
    /// (DockerMachineTemplate).
    pub kind: String,
    /// Its spec, copied as given (for a machine template: `spec.template.spec`).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub spec: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    #[serde(default = "pods_cidr")]
    pub pods: String,
    #[serde(default = "services_cidr")]
    pub services: String,
    /// The NodePort range, e.g. 30000-32767.
    #[serde(default = "node_ports")]
    pub node_ports: String,
}

fn pods_cidr() -> String {
    "192.168.0.0/16".into()
}
fn services_cidr() -> String {
    "10.96.0.0/12".into()
}
fn node_ports() -> String {
    "30000-32767".into()
}

impl Default for ClusterNetwork {
    fn default() -> Self {
        Self { pods: pods_cidr(), services: services_cidr(), node_ports: node_ports() }
    }
}

/// Whether `v` is a Kubernetes version like v1.29.0.
pub fn is_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else { return false };
    let parts: Vec<&str> = rest.split('.').collect();
    v.len() <= 32
        && parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A version's numbers (major, minor, patch), when it is one like v1.29.0.
fn version_numbers(v: &str) -> Option<(u64, u64, u64)> {
    if !is_version(v) {
        return None;
    }
    let mut n = v[1..].split('.').map(|p| p.parse::<u64>().ok());
    Some((n.next()??, n.next()??, n.next()??))
}

/// Why a cluster running `from` cannot be moved to `to`, if it cannot:
/// Kubernetes (kubeadm, and Cluster API's KubeadmControlPlane webhook)
/// upgrades one minor version at a time, and kubeadm does not downgrade.
pub fn upgrade_problem(from: &str, to: &str) -> Option<String> {
    let (Some(f), Some(t)) = (version_numbers(from), version_numbers(to)) else { return None };
    if t < f {
        return Some(format!("{to} is older than the {from} the cluster runs: Kubernetes clusters are not downgraded"));
    }
    if (t.0, t.1) >= (f.0, f.1.saturating_add(2)) {
        return Some(format!(
            "Kubernetes upgrades one minor version at a time: from {from}, go to v{}.{}.x first",
            f.0,
            f.1.saturating_add(1)
        ));
    }
    None
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else { return false };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

impl ClusterSpec {
    /// The version it runs on `profile`.
    pub fn version_on<'a>(&'a self, profile: &'a ClusterProfileSpec) -> &'a str {
        self.version.as_deref().or(profile.versions.first().map(String::as_str)).unwrap_or("")
    }

    /// What is wrong with the spec on `profile` (field and reason each).
    pub fn validate_on(&self, profile: &ClusterProfileSpec) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if let Some(v) = &self.version {
            if !is_version(v) {
                out.push(FieldProblem::new("spec.version", format!("{v:?} is not a version like v1.29.0")));
            } else if !profile.versions.contains(v) {
                out.push(FieldProblem::new(
                    "spec.version",
                    format!("{v} is not offered here (profile {}: {})", self.profile, profile.versions.join(", ")),
                ));
            }
        }
        if !profile.control_planes.contains(&self.control_plane) {
            let allowed: Vec<String> = profile.control_planes.iter().map(u32::to_string).collect();
            out.push(FieldProblem::new(
                "spec.controlPlane",
                format!(
                    "{} control-plane machines are not offered (allowed: {})",
                    self.control_plane,
                    allowed.join(", ")
                ),
            ));
        }
        if self.workers > profile.max_workers {
            out.push(FieldProblem::new(
                "spec.workers",
                format!("{} workers are more than the profile allows ({})", self.workers, profile.max_workers),
            ));
        }
        out
    }
}

impl ClusterProfileSpec {
    /// What is wrong with the profile (field and reason each).
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        for (field, o) in [
            ("spec.infrastructure.cluster", &self.infrastructure.cluster),
            ("spec.infrastructure.machine", &self.infrastructure.machine),
        ]
        .into_iter()
        .chain(self.infrastructure.worker_machine.as_ref().map(|m| ("spec.infrastructure.workerMachine", m)))
        {
            if !o.api_version.contains('/') {
                out.push(FieldProblem::new(format!("{field}.apiVersion"), "must be group/version"));
            }
            if o.kind.is_empty() || !o.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                out.push(FieldProblem::new(format!("{field}.kind"), "must be a kind name"));
            }
            if !(o.spec.is_object() || o.spec.is_null()) {
                out.push(FieldProblem::new(format!("{field}.spec"), "must be an object"));
            }
        }
        if self.versions.is_empty() {
            out.push(FieldProblem::new("spec.versions", "at least one version is needed"));
        }
        for (i, v) in self.versions.iter().enumerate() {
            if !is_version(v) {
                out.push(FieldProblem::new(
                    format!("spec.versions[{i}]"),
                    format!("{v:?} is not a version like v1.29.0"),
                ));
            }
        }
        if self.max_workers > MAX_WORKERS {
            out.push(FieldProblem::new("spec.maxWorkers", format!("at most {MAX_WORKERS}")));
        }
        if self.control_planes.is_empty() || self.control_planes.iter().any(|n| ![1, 3, 5].contains(n)) {
            out.push(FieldProblem::new("spec.controlPlanes", "must be some of 1, 3, 5 (an odd etcd quorum)"));
        }
        for (field, c) in [("spec.network.pods", &self.network.pods), ("spec.network.services", &self.network.services)]
        {
            if !is_cidr(c) {
                out.push(FieldProblem::new(field, format!("{c:?} is not an IPv4 CIDR")));
            }
        }
        match self.network.node_ports.split_once('-').map(|(a, b)| (a.parse::<u16>(), b.parse::<u16>())) {
            Some((Ok(a), Ok(b))) if a > 0 && a <= b => {}
            _ => out.push(FieldProblem::new("spec.network.nodePorts", "must be a range like 30000-32767")),
        }
        for (i, r) in self.security_group_rules.iter().enumerate() {
            if !matches!(r.protocol.as_str(), "TCP" | "UDP") {
                out.push(FieldProblem::new(format!("spec.securityGroupRules[{i}].protocol"), "must be TCP or UDP"));
            }
            if r.port_min == 0 || r.port_min > r.port_max {
                out.push(FieldProblem::new(format!("spec.securityGroupRules[{i}]"), "portMin must be 1..=portMax"));
            }
        }
        if crate::duration::parse_exact(&self.node_unhealthy_timeout).is_err() {
            out.push(FieldProblem::new("spec.nodeUnhealthyTimeout", "must be a duration like 5m"));
        }
        if let Some(cm) = &self.cni_config_map
            && !crate::is_dns_label(cm)
        {
            out.push(FieldProblem::new("spec.cniConfigMap", "must name a ConfigMap"));
        }
        out
    }
}

/// Clusters a tenant may have when its quota does not say.
pub const DEFAULT_CLUSTER_QUOTA: u32 = 1;

/// Why the tenant's `quota` does not allow cluster `c` among its clusters
/// `all` (which may include `c`): `clusters` counts those made before it
/// (by creation time, then name), `clusterWorkers` their workers with its.
pub fn quota_problem(quota: &crate::tenant::Quota, all: &[Cluster], c: &Cluster) -> Option<String> {
    let key = |x: &Cluster| (x.metadata.creation_timestamp.clone().map(|t| t.0), x.metadata.name.clone());
    let me = key(c);
    let before: Vec<&Cluster> = all
        .iter()
        .filter(|x| x.metadata.name != c.metadata.name && x.metadata.deletion_timestamp.is_none())
        .filter(|x| me.0.is_none() || key(x) < me)
        .collect();
    let max = quota.clusters.unwrap_or(DEFAULT_CLUSTER_QUOTA);
    if before.len() as u64 >= u64::from(max) {
        return Some(format!("quota.clusters: the tenant may have {max} cluster(s), and has {}", before.len()));
    }
    if let Some(max) = quota.cluster_workers {
        let used: u64 = before.iter().map(|x| u64::from(x.spec.workers)).sum();
        if used + u64::from(c.spec.workers) > u64::from(max) {
            return Some(format!(
                "quota.clusterWorkers: {} more workers would make {} of {max}",
                c.spec.workers,
                used + u64::from(c.spec.workers)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ClusterProfileSpec {
        serde_json::from_value(serde_json::json!({"infrastructure": {
            "cluster": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimCluster"},
            "machine": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimMachineTemplate"}}}))
        .unwrap()
    }

    #[test]
    fn upgrades_go_one_minor_at_a_time_and_never_down() {
        assert_eq!(upgrade_problem("v1.29.0", "v1.29.0"), None);
        assert_eq!(upgrade_problem("v1.29.0", "v1.29.4"), None);
        assert_eq!(upgrade_problem("v1.29.3", "v1.30.0"), None);
        let skip = upgrade_problem("v1.29.0", "v1.31.0").unwrap();
        assert!(skip.contains("go to v1.30.x first"), "{skip}");
        assert!(upgrade_problem("v1.29.0", "v2.0.0").is_some());
        let down = upgrade_problem("v1.30.1", "v1.30.0").unwrap();
        assert!(down.contains("not downgraded"), "{down}");
        assert!(upgrade_problem("v1.30.0", "v1.29.9").is_some());
        // Not versions: the other checks say so.
        assert_eq!(upgrade_problem("v1.29.0", "latest"), None);
        assert!(upgrade_problem("v1.29.0", "v999999.999999.999999").is_some());
        assert_eq!(upgrade_problem("v1.999999.0", "v1.999999.1"), None, "no overflow at the largest minor");
    }

    #[test]
    fn defaults_and_problems() {
        let p = profile();
        assert!(p.validate().is_empty(), "{:?}", p.validate());
        assert_eq!(p.versions, ["v1.29.0"]);
        assert_eq!(p.security_group_rules.len(), 6);
        let c: ClusterSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!((c.profile.as_str(), c.control_plane, c.workers), ("default", 1, 2));
        assert!(c.validate_on(&p).is_empty());
        assert_eq!(c.version_on(&p), "v1.29.0");
        let bad = ClusterSpec { version: Some("1.29".into()), control_plane: 2, workers: 11, ..c.clone() };
        let fields: Vec<String> = bad.validate_on(&p).into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["spec.version", "spec.controlPlane", "spec.workers"]);
        let other = ClusterSpec { version: Some("v1.30.0".into()), ..c };
        assert!(other.validate_on(&p)[0].reason.contains("not offered"));
        assert!(!is_version("v1.29.0.1") && !is_version("v1.29.x") && is_version("v1.31.12"));
    }
}
