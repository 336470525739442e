//! A synthetic multi-tenant cluster for benchmarks and property tests:
//! tenants with default-deny policies and per-network allow rules, like the
//! policy sets Paddock writes.

use crate::input::{Input, NamespaceInfo, Peer, PodInfo, PolicyInfo, Rule};
use crate::ports::{PortMatch, Protocol};
use crate::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sel(pairs: &[(&str, &str)]) -> Selector {
    let ls = LabelSelector { match_labels: Some(labels(pairs)), match_expressions: None };
    Selector::compile(&ls, "synthetic").unwrap_or_default()
}

/// `tenants` namespaces with `pods_per_tenant` pods each, spread over a few
/// networks, and `policies_per_tenant` policies each (default deny, DNS egress,
/// then one allow policy per network).
pub fn cluster(tenants: usize, pods_per_tenant: usize, policies_per_tenant: usize) -> Input {
    let mut input = Input::default();
    input.namespaces.push(NamespaceInfo {
        name: "kube-system".into(),
        labels: labels(&[("kubernetes.io/metadata.name", "kube-system")]),
    });
    input.pods.push(PodInfo {
        namespace: "kube-system".into(),
        name: "coredns".into(),
        labels: labels(&[("k8s-app", "kube-dns")]),
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 244, 255, 1))],
        ports: vec![("dns".into(), Protocol::Udp, 53)],
    });
    let networks = policies_per_tenant.saturating_sub(2).max(1);
    for t in 0..tenants {
        let ns = format!("tenant-{t}");
        input.namespaces.push(NamespaceInfo {
            name: ns.clone(),
            labels: labels(&[("kubernetes.io/metadata.name", &ns), ("paddock.dev/tenant", &format!("t{t}"))]),
        });
        for p in 0..pods_per_tenant {
            let net = format!("n{}", p % networks);
            let ip = IpAddr::V4(Ipv4Addr::new(10, ((t / 250) % 250) as u8, (t % 250) as u8, (1 + p % 250) as u8));
            input.pods.push(PodInfo {
                namespace: ns.clone(),
                name: format!("pod-{p}"),
                labels: labels(&[("app", &format!("app-{p}")), (&format!("paddock.dev/net-{net}"), "true")]),
                ips: vec![ip],
                ports: vec![("http".into(), Protocol::Tcp, 8080)],
            });
        }
        let deny = |name: &str| PolicyInfo {
            namespace: ns.clone(),
            name: name.into(),
            pod_selector: Selector::everything(),
            ingress: vec![],
            egress: vec![],
            affects_ingress: true,
            affects_egress: true,
        };
        input.policies.push(deny("default-deny"));
        let mut dns = deny("allow-dns");
        dns.affects_ingress = false;
        dns.egress = vec![Rule {
            peers: vec![Peer::Pods {
                namespaces: Some(sel(&[("kubernetes.io/metadata.name", "kube-system")])),
                pods: Some(sel(&[("k8s-app", "kube-dns")])),
            }],
            ports: vec![PortMatch::Range(Protocol::Udp, 53, 53), PortMatch::Range(Protocol::Tcp, 53, 53)],
        }];
        input.policies.push(dns);
        for n in 0..policies_per_tenant.saturating_sub(2) {
            let key = format!("paddock.dev/net-n{n}");
            let on_net = sel(&[(&key, "true")]);
            let rule = Rule {
                peers: vec![Peer::Pods { namespaces: None, pods: Some(on_net.clone()) }],
                ports: vec![PortMatch::Named(Protocol::Tcp, "http".into())],
            };
            input.policies.push(PolicyInfo {
                namespace: ns.clone(),
                name: format!("net-n{n}"),
                pod_selector: on_net,
                ingress: vec![rule.clone()],
                egress: vec![rule],
                affects_ingress: true,
                affects_egress: true,
            });
        }
    }
    input
}
