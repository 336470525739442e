//! What the evaluator looks at: namespaces, pods and policies, converted from
//! the Kubernetes types with every malformed field reported by name.

use crate::ports::{PortMatch, Protocol};
use crate::selector::Selector;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A field that cannot be evaluated, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    pub field: String,
    pub reason: String,
}

impl InputError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_string(), reason: reason.into() }
    }
    fn within(mut self, what: &str) -> Self {
        self.field = format!("{what}: {}", self.field);
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    /// Named container ports: (name, protocol, number).
    pub ports: Vec<(String, Protocol, u16)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector`; a missing namespace selector
    /// means the policy's own namespace, a missing pod selector all pods.
    Pods { namespaces: Option<Selector>, pods: Option<Selector> },
    /// `ipBlock`.
    Block { cidr: IpNet, except: Vec<IpNet> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Empty: every peer, inside or outside the cluster.
    pub peers: Vec<Peer>,
    /// Empty: every port.
    pub ports: Vec<PortMatch>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInfo {
    pub namespace: String,
    pub name: String,
    pub pod_selector: Selector,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub affects_ingress: bool,
    pub affects_egress: bool,
}

/// Everything the evaluator needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    pub namespaces: Vec<NamespaceInfo>,
    pub pods: Vec<PodInfo>,
    pub policies: Vec<PolicyInfo>,
}

fn parse_net(s: &str, field: &str) -> Result<IpNet, InputError> {
    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| InputError::new(field, format!("{s:?} is not a valid CIDR")))
}

fn peer(p: &NetworkPolicyPeer, field: &str) -> Result<Peer, InputError> {
    if let Some(b) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err(InputError::new(field, "ipBlock cannot be combined with podSelector or namespaceSelector"));
        }
        let cidr = parse_net(&b.cidr, &format!("{field}.ipBlock.cidr"))?;
        let mut except = Vec::new();
        for (i, e) in b.except.iter().flatten().enumerate() {
            let n = parse_net(e, &format!("{field}.ipBlock.except[{i}]"))?;
            if !cidr.contains(&n) {
                return Err(InputError::new(
                    &format!("{field}.ipBlock.except[{i}]"),
                    format!("{e} is not within {}", b.cidr),
                ));
            }
            except.push(n);
        }
        return Ok(Peer::Block { cidr, except });
    }
    if p.pod_selector.is_none() && p.namespace_selector.is_none() {
        return Err(InputError::new(field, "must specify a peer (podSelector, namespaceSelector or ipBlock)"));
    }
    let namespaces = p
        .namespace_selector
        .as_ref()
        .map(|s| Selector::compile(s, &format!("{field}.namespaceSelector")))
        .transpose()?;
    let pods = p.pod_selector.as_ref().map(|s| Selector::compile(s, &format!("{field}.podSelector"))).transpose()?;
    Ok(Peer::Pods { namespaces, pods })
}

fn port(p: &NetworkPolicyPort, field: &str) -> Result<PortMatch, InputError> {
    let proto_s = p.protocol.as_deref().unwrap_or("TCP");
    let proto = Protocol::parse(proto_s)
        .ok_or_else(|| InputError::new(&format!("{field}.protocol"), format!("{proto_s:?} is not TCP, UDP or SCTP")))?;
    match (&p.port, p.end_port) {
        (None, None) => Ok(PortMatch::AnyPort(proto)),
        (None, Some(_)) => Err(InputError::new(&format!("{field}.endPort"), "endPort requires port")),
        (Some(IntOrString::Int(n)), end) => {
            let lo = u16::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| InputError::new(&format!("{field}.port"), format!("{n} is not between 1 and 65535")))?;
            let hi = match end {
                None => lo,
                Some(e) => u16::try_from(e).ok().filter(|e| *e >= lo).ok_or_else(|| {
                    InputError::new(&format!("{field}.endPort"), format!("{e} must be between port ({lo}) and 65535"))
                })?,
            };
            Ok(PortMatch::Range(proto, lo, hi))
        }
        (Some(IntOrString::String(name)), None) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(PortMatch::Range(proto, n, n));
            }
            Ok(PortMatch::Named(proto, name.clone()))
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            Err(InputError::new(&format!("{field}.endPort"), "endPort cannot be used with a named port"))
        }
    }
}

fn rules(list: Option<&Vec<impl RuleLike>>, dir: &str) -> Result<Vec<Rule>, InputError> {
    let mut out = Vec::new();
    for (i, r) in list.into_iter().flatten().enumerate() {
        let base = format!("spec.{dir}[{i}]");
        let peers_field = if dir == "ingress" { "from" } else { "to" };
        let mut peers = Vec::new();
        for (j, p) in r.peers().iter().enumerate() {
            peers.push(peer(p, &format!("{base}.{peers_field}[{j}]"))?);
        }
        let mut ports = Vec::new();
        for (j, p) in r.ports().iter().enumerate() {
            ports.push(port(p, &format!("{base}.ports[{j}]"))?);
        }
        out.push(Rule { peers, ports });
    }
    Ok(out)
}

trait RuleLike {
    fn peers(&self) -> &[NetworkPolicyPeer];
    fn ports(&self) -> &[NetworkPolicyPort];
}

impl RuleLike for k8s_openapi::api::networking::v1::NetworkPolicyIngressRule {
    fn peers(&self) -> &[NetworkPolicyPeer] {
        self.from.as_deref().unwrap_or(&[])
    }
    fn ports(&self) -> &[NetworkPolicyPort] {
        self.ports.as_deref().unwrap_or(&[])
    }
}

impl RuleLike for k8s_openapi::api::networking::v1::NetworkPolicyEgressRule {
    fn peers(&self) -> &[NetworkPolicyPeer] {
        self.to.as_deref().unwrap_or(&[])
    }
    fn ports(&self) -> &[NetworkPolicyPort] {
        self.ports.as_deref().unwrap_or(&[])
    }
}

impl PolicyInfo {
    pub fn from_k8s(p: &NetworkPolicy) -> Result<PolicyInfo, InputError> {
        let namespace = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        let what = format!("NetworkPolicy {namespace}/{name}");
        let spec = p.spec.clone().unwrap_or_default();
        let pod_selector = Selector::compile(&spec.pod_selector.clone().unwrap_or_default(), "spec.podSelector")
            .map_err(|e| e.within(&what))?;
        let ingress = rules(spec.ingress.as_ref(), "ingress").map_err(|e| e.within(&what))?;
        let egress = rules(spec.egress.as_ref(), "egress").map_err(|e| e.within(&what))?;
        // policyTypes defaulting: Ingress always, Egress when egress rules exist.
        let (affects_ingress, affects_egress) = match &spec.policy_types {
            Some(types) => {
                for (i, t) in types.iter().enumerate() {
                    if t != "Ingress" && t != "Egress" {
                        return Err(InputError::new(
                            &format!("spec.policyTypes[{i}]"),
                            format!("{t:?} is not Ingress or Egress"),
                        )
                        .within(&what));
                    }
                }
                (types.iter().any(|t| t == "Ingress"), types.iter().any(|t| t == "Egress"))
            }
            None => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
        };
        Ok(PolicyInfo { namespace, name, pod_selector, ingress, egress, affects_ingress, affects_egress })
    }
}

impl Input {
    /// Converts live objects. Pods that have finished (Succeeded/Failed) or use
    /// the host network are left out: policies do not apply to them.
    pub fn from_k8s(namespaces: &[Namespace], pods: &[Pod], policies: &[NetworkPolicy]) -> Result<Input, InputError> {
        let namespaces = namespaces
            .iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let mut labels = n.metadata.labels.clone().unwrap_or_default();
                // Upstream sets this label on every namespace (since 1.21).
                labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| name.clone());
                NamespaceInfo { name, labels }
            })
            .collect();
        let pods = pods
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                let host = p.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
                !host && phase != Some("Succeeded") && phase != Some("Failed")
            })
            .map(|p| {
                let status = p.status.clone().unwrap_or_default();
                let mut ips: Vec<IpAddr> = status.pod_ips.iter().flatten().filter_map(|i| i.ip.parse().ok()).collect();
                if ips.is_empty()
                    && let Some(ip) = status.pod_ip.as_deref().and_then(|i| i.parse().ok())
                {
                    ips.push(ip);
                }
                let ports = p
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter_map(|cp| {
                        let proto = Protocol::parse(cp.protocol.as_deref().unwrap_or("TCP"))?;
                        Some((cp.name.clone()?, proto, u16::try_from(cp.container_port).ok()?))
                    })
                    .collect();
                PodInfo {
                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    labels: p.metadata.labels.clone().unwrap_or_default(),
                    ips,
                    ports,
                }
            })
            .collect();
        let policies = policies.iter().map(PolicyInfo::from_k8s).collect::<Result<_, _>>()?;
        Ok(Input { namespaces, pods, policies })
    }
}
