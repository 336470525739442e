//! Tenant: a team, user or group that gets its own namespace, default-deny
//! networking, quota, limits, storage and (later) a VPN.

use crate::FieldProblem;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tn",
    status = "TenantStatus",
    printcolumn = r#"{"name": "Kind", "type": "string", "jsonPath": ".spec.kind"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".status.namespace"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Team, User or Group.
    pub kind: TenantKind,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Limits on what the tenant's namespace may hold.
    #[serde(default)]
    pub quota: Quota,
    /// Requests and limits given to containers that state none.
    #[serde(default)]
    pub defaults: Defaults,
    /// The tenant's persistent storage (`storage` PVC; `shared` for groups).
    #[serde(default)]
    pub storage: Storage,
    /// Group tenants whose shared storage this tenant's instances mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// What the tenant's pods may reach outside their own instance networks.
    #[serde(default)]
    pub egress: Egress,
    /// The team VPN (used by the VPN feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<Vpn>,
    /// Overrides the node role the tenant's task pods go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role: Option<NodeRole>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TenantKind {
    Team,
    User,
    Group,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Task,
    Vpn,
    Shared,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
    /// Total cpu requests, e.g. "4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Total memory requests, e.g. "8Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Total storage requests of claims, e.g. "50Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Instances the tenant may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// Kubernetes clusters the tenant may have (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<u32>,
    /// Workers all its clusters may have together (default: no limit
    /// beyond each profile's `maxWorkers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_workers: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    /// Default cpu request (default: the installation's, 100m unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    /// Default memory request (default: the installation's, 128Mi unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

fn default_size() -> String {
    "10Gi".into()
}
fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Whether the tenant gets a volume at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Size of the volume; it may grow, never shrink.
    #[serde(default = "default_size")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "quantity(self).compareTo(quantity(oldSelf)) >= 0", "message": "storage size may grow but not shrink"}]))]
    pub size: String,
    /// Storage class (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the data when the tenant is deleted (the volume is retained).
    #[serde(default = "yes")]
    pub retain_on_delete: bool,
    /// What the tenant may do with its volumes through Paddock's file
    /// browser (the API's `/storage/files` routes): ReadWrite, ReadOnly or
    /// Disabled.
    #[serde(default)]
    pub files: FilesAccess,
}

/// Access to a tenant's volumes through the file browser.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FilesAccess {
    #[default]
    ReadWrite,
    ReadOnly,
    Disabled,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            enabled: true,
            size: default_size(),
            storage_class_name: None,
            retain_on_delete: true,
            files: FilesAccess::ReadWrite,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// DNS lookups through the cluster DNS.
    #[serde(default = "yes")]
    pub dns: bool,
    /// The public internet (0.0.0.0/0 except private ranges and the metadata address).
    #[serde(default)]
    pub internet: bool,
    /// Further destinations, as CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Ports the internet/CIDR allowances are limited to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

impl Default for Egress {
    fn default() -> Self {
        Self { dns: true, internet: false, cidrs: vec![], ports: vec![] }
    }
}

fn five() -> u32 {
    5
}
fn wireguard_port() -> u16 {
    51820
}

/// The team VPN: a WireGuard server in the tenant's namespace that reaches
/// the pods of the tenant's instances on the `teamnet` network, nothing else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vpn {
    #[serde(default)]
    pub enabled: bool,
    /// Client slots (team size), 1 to 250.
    #[serde(default = "five")]
    pub clients: u32,
    /// How the server is exposed: NodePort (default) or LoadBalancer.
    #[serde(default)]
    pub service_type: VpnServiceType,
    /// UDP port of the server (and of the LoadBalancer).
    #[serde(default = "wireguard_port")]
    pub port: u16,
    /// Host or IP clients connect to (default: the installation's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Default for Vpn {
    fn default() -> Self {
        Self { enabled: false, clients: five(), service_type: VpnServiceType::NodePort, port: 51820, endpoint: None }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VpnServiceType {
    #[default]
    NodePort,
    LoadBalancer,
}

/// The VPN as provisioned (keys are in the Secret `vpn`, never here).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnStatus {
    /// The tenant's /24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_pool: Option<String>,
    /// `host:port` clients connect to, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default)]
    pub clients: u32,
    #[serde(default)]
    pub ready: bool,
    /// Why the VPN server is not running, when its pod failed (e.g. its
    /// node's kubelet refused its sysctl: reason `SysctlForbidden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<VpnFailure>,
}

/// Why a tenant's VPN server pod failed: the pod's reason and message.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnFailure {
    pub reason: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Provisioning, Ready, Degraded (a write the API server refused), Failed or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Capacity of the tenant's volume as bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<VpnStatus>,
    /// The file browser's server (absent while it is not running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesStatus>,
}

/// The tenant's file server, started on demand by the file browser.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesStatus {
    /// Starting, Running, or Refused (its pod was not admitted or cannot run).
    pub phase: String,
    /// Why, when it is not Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Until when it runs without another request (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

fn check_quantity(out: &mut Vec<FieldProblem>, field: &str, v: &str) {
    match quantity::Quantity::parse(v) {
        Some(q) if q.0 > 0 => {}
        Some(_) => out.push(FieldProblem::new(field, format!("{v:?} must be greater than zero"))),
        None => out.push(FieldProblem::new(field, format!("{v:?} is not a quantity (like 500m, 2, 512Mi or 10Gi)"))),
    }
}

impl TenantSpec {
    /// Everything wrong with the spec that the schema cannot express.
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        for (f, v) in [
            ("spec.quota.cpu", &self.quota.cpu),
            ("spec.quota.memory", &self.quota.memory),
            ("spec.quota.storage", &self.quota.storage),
        ] {
            if let Some(v) = v {
                check_quantity(&mut out, f, v);
            }
        }
        for (f, v) in [
            ("spec.defaults.cpuRequest", &self.defaults.cpu_request),
            ("spec.defaults.memoryRequest", &self.defaults.memory_request),
        ] {
            if let Some(v) = v {
                check_quantity(&mut out, f, v);
            }
        }
        for (f, lim, req) in [
            ("spec.defaults.cpuLimit", &self.defaults.cpu_limit, &self.defaults.cpu_request),
            ("spec.defaults.memoryLimit", &self.defaults.memory_limit, &self.defaults.memory_request),
        ] {
            if let Some(l) = lim {
                check_quantity(&mut out, f, l);
                if let (Some(lq), Some(req)) = (quantity::Quantity::parse(l), req.as_deref())
                    && quantity::Quantity::parse(req).is_some_and(|rq| lq < rq)
                {
                    out.push(FieldProblem::new(f, format!("{l} is less than the request {req}")));
                }
            }
        }
        if self.storage.enabled {
            check_quantity(&mut out, "spec.storage.size", &self.storage.size);
        }
        for (i, g) in self.groups.iter().enumerate() {
            if !crate::is_dns_label(g) {
                out.push(FieldProblem::new(format!("spec.groups[{i}]"), format!("{g:?} is not a valid tenant name")));
            }
        }
        for (i, c) in self.egress.cidrs.iter().enumerate() {
            if !is_cidr(c) {
                out.push(FieldProblem::new(
                    format!("spec.egress.cidrs[{i}]"),
                    format!("{c:?} is not a CIDR (like 192.0.2.0/24)"),
                ));
            }
        }
        for (i, p) in self.egress.ports.iter().enumerate() {
            if *p == 0 {
                out.push(FieldProblem::new(format!("spec.egress.ports[{i}]"), "0 is not a port"));
            }
        }
        if let Some(v) = &self.vpn {
            if !(1..=250).contains(&v.clients) {
                out.push(FieldProblem::new("spec.vpn.clients", format!("{} is not between 1 and 250", v.clients)));
            }
            if v.port == 0 {
                out.push(FieldProblem::new("spec.vpn.port", "0 is not a port"));
            }
            if let Some(e) = &v.endpoint
                && (e.is_empty() || e.contains(char::is_whitespace) || e.contains('/') || e.len() > 253)
            {
                out.push(FieldProblem::new("spec.vpn.endpoint", format!("{e:?} is not a host name or IP address")));
            }
        }
        if let Some(n) = &self.display_name
            && n.len() > 256
        {
            out.push(FieldProblem::new("spec.displayName", "may not be longer than 256 characters"));
        }
        out
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else { return false };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 32),
        Ok(std::net::IpAddr::V6(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 128),
        Err(_) => false,
    }
}

/// A tenant name is the namespace suffix: it must be a DNS label.
pub fn validate_name(name: &str, prefix: &str) -> Option<FieldProblem> {
    if !crate::is_dns_label(name) {
        return Some(FieldProblem::new(
            "metadata.name",
            format!("{name:?} must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"),
        ));
    }
    if prefix.len() + name.len() > 63 {
        return Some(FieldProblem::new(
            "metadata.name",
            format!("{name:?} is too long: with the namespace prefix {prefix:?} it exceeds 63 characters"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let t: TenantSpec = serde_json::from_value(serde_json::json!({"kind": "Team"})).unwrap();
        assert!(t.defaults.cpu_request.is_none(), "the installation's default applies");
        assert_eq!(t.storage.size, "10Gi");
        assert!(t.storage.retain_on_delete);
        assert!(t.egress.dns && !t.egress.internet);
        assert!(t.validate().is_empty());
    }

    #[test]
    fn problems_name_the_field() {
        let t: TenantSpec = serde_json::from_value(serde_json::json!({"kind": "User",
            "quota": {"cpu": "lots"}, "defaults": {"memoryRequest": "1Gi", "memoryLimit": "512Mi"},
            "groups": ["Bad_Group"], "egress": {"cidrs": ["10.0.0.0/40"]}}))
        .unwrap();
        let p: Vec<String> = t.validate().iter().map(|p| p.to_string()).collect();
        assert!(
            p.contains(&"spec.quota.cpu: \"lots\" is not a quantity (like 500m, 2, 512Mi or 10Gi)".to_string()),
            "{p:?}"
        );
        assert!(p.contains(&"spec.defaults.memoryLimit: 512Mi is less than the request 1Gi".to_string()), "{p:?}");
        assert!(p.iter().any(|x| x.starts_with("spec.groups[0]")), "{p:?}");
        assert!(p.iter().any(|x| x.starts_with("spec.egress.cidrs[0]")), "{p:?}");
        assert!(validate_name("team-a", "paddock-").is_none());
        assert!(validate_name("Team_A", "paddock-").is_some());
    }

    #[test]
    fn crd_has_printer_columns_and_status() {
        let crd = Tenant::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        let cols: Vec<&str> = v.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, ["Kind", "Phase", "Namespace", "Age"]);
        let schema = serde_json::to_value(&v.schema).unwrap();
        let size = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["storage"]["properties"]["size"];
        assert_eq!(size["x-kubernetes-validations"][0]["message"], "storage size may grow but not shrink");
    }
}
