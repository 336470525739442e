//! NetworkPolicy evaluation with the semantics of networking.k8s.io/v1.
//!
//! Given namespaces, pods and policies, [`Evaluator`] answers whether one
//! endpoint may open a connection to another on a port, which ports are open
//! between them, and why — the egress side at the source and the ingress side
//! at the destination must both allow it.
//!
//! Semantics (the upstream API reference and network-policy e2e tests):
//! - a pod is isolated for ingress (egress) only when some policy in its
//!   namespace selects it and has that policy type; `policyTypes` defaults to
//!   Ingress, plus Egress when the policy has egress rules;
//! - rules add up; a rule with no peers allows every peer (inside or outside
//!   the cluster), a rule with no ports allows every port;
//! - a peer with a pod selector only means pods of the policy's namespace; with
//!   a namespace selector only, every pod of the selected namespaces; with both,
//!   the selected pods of the selected namespaces;
//! - named ports resolve against the destination pod's container ports;
//!   `endPort` makes an inclusive range;
//! - a pod may always reach itself.
//!
//! `ipBlock` and pod IPs: upstream leaves it to the network plugin whether an
//! ipBlock also matches traffic to/from pods. By default ipBlocks match only
//! addresses outside the cluster (as Cilium does, and as the upstream docs
//! recommend relying on); [`Options::ipblock_matches_pods`] makes them match
//! pod IPs too (as Calico does), for a more conservative audit.

pub mod audit;
pub mod input;
pub mod ports;
pub mod selector;
pub mod synthetic;

pub use input::{Input, InputError, NamespaceInfo, Peer, PodInfo, PolicyInfo, Rule};
pub use ports::{PortMatch, PortSet, Protocol};

use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::net::IpAddr;

/// Index of a pod in the input.
pub type PodId = usize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub ipblock_matches_pods: bool,
}

/// One side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Pod(PodId),
    /// An address outside the cluster.
    External(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Ingress,
    Egress,
}

struct CompiledRule {
    policy: usize,
    index: usize,
    /// Pods this rule's peers select (all pods when the rule has no peers).
    pods: FixedBitSet,
    all_peers: bool,
    blocks: Vec<(ipnet::IpNet, Vec<ipnet::IpNet>)>,
    ports: Vec<PortMatch>,
}

/// A precomputed view of a cluster's policies.
pub struct Evaluator {
    input: Input,
    rules: Vec<CompiledRule>,
    /// Per pod: ids of the ingress / egress rules of the policies selecting it.
    ingress_rules: Vec<Vec<usize>>,
    egress_rules: Vec<Vec<usize>>,
    /// Per pod: the policies that isolate it for ingress / egress.
    ingress_policies: Vec<Vec<usize>>,
    egress_policies: Vec<Vec<usize>>,
    /// Per pod: whether any policy selects it (whatever its types).
    covered: Vec<bool>,
    pod_index: HashMap<(String, String), PodId>,
}

/// A decision with the reason behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub explanation: String,
}

fn block_matches(blocks: &[(ipnet::IpNet, Vec<ipnet::IpNet>)], ip: &IpAddr) -> bool {
    blocks.iter().any(|(cidr, except)| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)))
}

impl Evaluator {
    pub fn new(input: Input, opts: Options) -> Evaluator {
        let n = input.pods.len();
        let ns_labels: HashMap<&str, &std::collections::BTreeMap<String, String>> =
            input.namespaces.iter().map(|ns| (ns.name.as_str(), &ns.labels)).collect();
        let empty = std::collections::BTreeMap::new();
        let pods_by_ns: HashMap<&str, Vec<PodId>> =
            input.pods.iter().enumerate().fold(HashMap::new(), |mut m, (i, p)| {
                m.entry(p.namespace.as_str()).or_default().push(i);
                m
            });
        let mut rules = Vec::new();
        let mut ingress_rules = vec![Vec::new(); n];
        let mut egress_rules = vec![Vec::new(); n];
        let mut ingress_policies = vec![Vec::new(); n];
        let mut egress_policies = vec![Vec::new(); n];
        let mut covered = vec![false; n];
        for (pi, pol) in input.policies.iter().enumerate() {
            let selected: Vec<PodId> = pods_by_ns
                .get(pol.namespace.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| pol.pod_selector.matches(&input.pods[i].labels))
                .collect();
            for &i in &selected {
                covered[i] = true;
            }
            for (dir, list, affects) in
                [(Dir::Ingress, &pol.ingress, pol.affects_ingress), (Dir::Egress, &pol.egress, pol.affects_egress)]
            {
                if !affects {
                    continue;
                }
                let mut ids = Vec::new();
                for (ri, r) in list.iter().enumerate() {
                    let mut pods = FixedBitSet::with_capacity(n);
                    let mut blocks = Vec::new();
                    let all_peers = r.peers.is_empty();
                    if all_peers {
                        pods.insert_range(..);
                    }
                    for peer in &r.peers {
                        match peer {
                            Peer::Pods { namespaces, pods: sel } => {
                                let ns_names: Vec<&str> = match namespaces {
                                    None => vec![pol.namespace.as_str()],
                                    Some(s) => input
                                        .namespaces
                                        .iter()
                                        .filter(|ns| {
                                            s.matches(ns_labels.get(ns.name.as_str()).copied().unwrap_or(&empty))
                                        })
                                        .map(|ns| ns.name.as_str())
                                        .collect(),
                                };
                                for ns in ns_names {
                                    for &i in pods_by_ns.get(ns).into_iter().flatten() {
                                        if sel.as_ref().is_none_or(|s| s.matches(&input.pods[i].labels)) {
                                            pods.insert(i);
                                        }
                                    }
                                }
                            }
                            Peer::Block { cidr, except } => {
                                blocks.push((*cidr, except.clone()));
                                if opts.ipblock_matches_pods {
                                    for (i, p) in input.pods.iter().enumerate() {
                                        if p.ips.iter().any(|ip| block_matches(&blocks[blocks.len() - 1..], ip)) {
                                            pods.insert(i);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    ids.push(rules.len());
                    rules.push(CompiledRule { policy: pi, index: ri, pods, all_peers, blocks, ports: r.ports.clone() });
                }
                for &p in &selected {
                    match dir {
                        Dir::Ingress => {
                            ingress_rules[p].extend(&ids);
                            ingress_policies[p].push(pi);
                        }
                        Dir::Egress => {
                            egress_rules[p].extend(&ids);
                            egress_policies[p].push(pi);
                        }
                    }
                }
            }
        }
        let pod_index =
            input.pods.iter().enumerate().map(|(i, p)| ((p.namespace.clone(), p.name.clone()), i)).collect();
        Evaluator { input, rules, ingress_rules, egress_rules, ingress_policies, egress_policies, covered, pod_index }
    }

    pub fn input(&self) -> &Input {
        &self.input
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodId> {
        self.pod_index.get(&(namespace.to_string(), name.to_string())).copied()
    }

    pub fn pod_name(&self, id: PodId) -> String {
        let p = &self.input.pods[id];
        format!("{}/{}", p.namespace, p.name)
    }

    fn policy_name(&self, pi: usize) -> String {
        let p = &self.input.policies[pi];
        format!("{}/{}", p.namespace, p.name)
    }

    pub fn isolated_ingress(&self, pod: PodId) -> bool {
        !self.ingress_policies[pod].is_empty()
    }

    pub fn isolated_egress(&self, pod: PodId) -> bool {
        !self.egress_policies[pod].is_empty()
    }

    /// Whether any policy selects the pod at all.
    pub fn has_policy(&self, pod: PodId) -> bool {
        self.covered[pod]
    }

    fn rule_peer_matches(&self, r: &CompiledRule, peer: Endpoint) -> bool {
        match peer {
            Endpoint::Pod(i) => r.pods.contains(i),
            Endpoint::External(ip) => r.all_peers || block_matches(&r.blocks, &ip),
        }
    }

    /// The ports a rule opens towards a destination (named ports resolve on it).
    fn rule_ports(&self, r: &CompiledRule, dst: Endpoint) -> PortSet {
        if r.ports.is_empty() {
            return PortSet::All;
        }
        let mut out = Vec::new();
        for m in &r.ports {
            match m {
                PortMatch::AnyPort(p) => out.push((*p, 1, 65535)),
                PortMatch::Range(p, lo, hi) => out.push((*p, *lo, *hi)),
                PortMatch::Named(p, name) => {
                    if let Endpoint::Pod(d) = dst {
                        for (n, proto, num) in &self.input.pods[d].ports {
                            if n == name && proto == p {
                                out.push((*p, *num, *num));
                            }
                        }
                    }
                }
            }
        }
        let mut s = PortSet::empty();
        s.union(PortSet::Ranges(out));
        s
    }

    /// Ports one side allows, with the rules that allow them.
    fn side(&self, dir: Dir, subject: PodId, peer: Endpoint, dst: Endpoint) -> (PortSet, Vec<usize>) {
        let rules = match dir {
            Dir::Ingress => &self.ingress_rules[subject],
            Dir::Egress => &self.egress_rules[subject],
        };
        let isolated = match dir {
            Dir::Ingress => self.isolated_ingress(subject),
            Dir::Egress => self.isolated_egress(subject),
        };
        if !isolated {
            return (PortSet::All, vec![]);
        }
        let mut set = PortSet::empty();
        let mut by = Vec::new();
        for &ri in rules {
            let r = &self.rules[ri];
            if self.rule_peer_matches(r, peer) {
                let ports = self.rule_ports(r, dst);
                if !ports.is_empty() {
                    by.push(ri);
                    set.union(ports);
                }
            }
        }
        (set, by)
    }

    /// Every port on which `from` may connect to `to`.
    pub fn allowed_ports(&self, from: Endpoint, to: Endpoint) -> PortSet {
        if from == to {
            return PortSet::All;
        }
        let egress = match from {
            Endpoint::Pod(s) => self.side(Dir::Egress, s, to, to).0,
            Endpoint::External(_) => PortSet::All,
        };
        if egress.is_empty() {
            return egress;
        }
        let ingress = match to {
            Endpoint::Pod(d) => self.side(Dir::Ingress, d, from, to).0,
            Endpoint::External(_) => PortSet::All,
        };
        egress.intersect(&ingress)
    }

    fn name_of(&self, e: Endpoint) -> String {
        match e {
            Endpoint::Pod(i) => self.pod_name(i),
            Endpoint::External(ip) => format!("{ip} (outside the cluster)"),
        }
    }

    fn explain_side(
        &self,
        dir: Dir,
        subject: PodId,
        peer: Endpoint,
        dst: Endpoint,
        proto: Protocol,
        port: u16,
    ) -> (bool, String) {
        let (word, policies) = match dir {
            Dir::Ingress => ("ingress to", &self.ingress_policies[subject]),
            Dir::Egress => ("egress from", &self.egress_policies[subject]),
        };
        let who = self.pod_name(subject);
        if policies.is_empty() {
            let kind = if dir == Dir::Ingress { "ingress" } else { "egress" };
            return (true, format!("{word} {who} is not isolated (no policy selects it for {kind})"));
        }
        let (_, by) = self.side(dir, subject, peer, dst);
        for ri in by {
            let r = &self.rules[ri];
            if self.rule_ports(r, dst).contains(proto, port) {
                let kind = if dir == Dir::Ingress { "ingress" } else { "egress" };
                return (
                    true,
                    format!("{word} {who} allowed by {} {kind} rule {}", self.policy_name(r.policy), r.index),
                );
            }
        }
        let names: Vec<String> = policies.iter().map(|&p| self.policy_name(p)).collect();
        let other = self.name_of(peer);
        let rel = if dir == Dir::Ingress { "from" } else { "to" };
        (
            false,
            format!(
                "{word} {who} is isolated by {} and no rule allows {rel} {other} on {proto}/{port}",
                names.join(", ")
            ),
        )
    }

    /// Whether `from` may connect to `to` on `proto/port`, and why.
    pub fn check(&self, from: Endpoint, to: Endpoint, port: u16, proto: Protocol) -> Verdict {
        if from == to {
            return Verdict { allowed: true, explanation: "a pod may always reach itself".into() };
        }
        let mut parts = Vec::new();
        let mut allowed = true;
        match from {
            Endpoint::Pod(s) => {
                let (ok, why) = self.explain_side(Dir::Egress, s, to, to, proto, port);
                allowed &= ok;
                parts.push((ok, why));
            }
            Endpoint::External(_) => {
                parts.push((true, "the source is outside the cluster (no egress policy applies)".into()))
            }
        }
        match to {
            Endpoint::Pod(d) => {
                let (ok, why) = self.explain_side(Dir::Ingress, d, from, to, proto, port);
                allowed &= ok;
                parts.push((ok, why));
            }
            Endpoint::External(_) => {
                parts.push((true, "the destination is outside the cluster (no ingress policy applies)".into()))
            }
        }
        let shown: Vec<String> = if allowed {
            parts.into_iter().map(|(_, w)| w).collect()
        } else {
            parts.into_iter().filter(|(ok, _)| !ok).map(|(_, w)| w).collect()
        };
        Verdict {
            allowed,
            explanation: format!("{}: {}", if allowed { "allowed" } else { "denied" }, shown.join("; ")),
        }
    }

    /// Pods `src` may send to at the peer level (ignoring ports).
    fn egress_peers(&self, src: PodId) -> FixedBitSet {
        let n = self.input.pods.len();
        let mut b = FixedBitSet::with_capacity(n);
        if !self.isolated_egress(src) {
            b.insert_range(..);
            return b;
        }
        for &ri in &self.egress_rules[src] {
            b.union_with(&self.rules[ri].pods);
        }
        b
    }

    /// For each pod, the pods it can connect to: on `port` when given, on any
    /// port otherwise. Row `i` is a bitset over destination pod ids.
    pub fn matrix(&self, port: Option<(Protocol, u16)>) -> Vec<FixedBitSet> {
        let n = self.input.pods.len();
        // accepts[i] = destinations whose ingress side accepts i at the peer level.
        // Destinations without ingress isolation accept everyone.
        let mut open = FixedBitSet::with_capacity(n);
        let mut accepts = vec![FixedBitSet::with_capacity(n); n];
        for d in 0..n {
            if !self.isolated_ingress(d) {
                open.insert(d);
                continue;
            }
            let mut from = FixedBitSet::with_capacity(n);
            for &ri in &self.ingress_rules[d] {
                from.union_with(&self.rules[ri].pods);
            }
            for s in from.ones() {
                accepts[s].insert(d);
            }
        }
        let mut out = Vec::with_capacity(n);
        for (s, acc) in accepts.iter().enumerate() {
            let mut row = self.egress_peers(s);
            let mut acc = acc.clone();
            acc.union_with(&open);
            row.intersect_with(&acc);
            row.insert(s);
            let candidates: Vec<usize> = row.ones().collect();
            for d in candidates {
                if d == s {
                    continue;
                }
                let ports = self.allowed_ports(Endpoint::Pod(s), Endpoint::Pod(d));
                let ok = match port {
                    Some((proto, p)) => ports.contains(proto, p),
                    None => !ports.is_empty(),
                };
                if !ok {
                    row.set(d, false);
                }
            }
            out.push(row);
        }
        out
    }

    /// Ports on which a pod accepts connections from (some address) outside the cluster.
    pub fn external_ingress(&self, pod: PodId) -> PortSet {
        if !self.isolated_ingress(pod) {
            return PortSet::All;
        }
        let mut set = PortSet::empty();
        for &ri in &self.ingress_rules[pod] {
            let r = &self.rules[ri];
            // An ipBlock opens the pod to the outside unless its exceptions cover it whole.
            let outside = r.all_peers || r.blocks.iter().any(|(cidr, except)| !except.iter().any(|e| e.contains(cidr)));
            if outside {
                set.union(self.rule_ports(r, Endpoint::Pod(pod)));
            }
        }
        set
    }
}
