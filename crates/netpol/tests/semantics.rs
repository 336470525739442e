//! Truth tables for NetworkPolicy semantics, after the upstream documentation's
//! examples and the upstream network-policy e2e cases.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol::{Endpoint, Evaluator, Input, Options, Protocol};
use serde_json::{Value, json};

struct World {
    namespaces: Vec<Namespace>,
    pods: Vec<Pod>,
    policies: Vec<NetworkPolicy>,
}

/// Namespaces `x` (team=a), `y` (team=b), `z` (no team); pods a, b, c in each,
/// labelled pod=<name>; every pod serves TCP 80 (named "http") and UDP 53 ("dns").
fn world() -> World {
    let mut w = World { namespaces: vec![], pods: vec![], policies: vec![] };
    for (i, (ns, team)) in [("x", Some("a")), ("y", Some("b")), ("z", None)].into_iter().enumerate() {
        let mut labels = json!({"kubernetes.io/metadata.name": ns});
        if let Some(t) = team {
            labels["team"] = json!(t);
        }
        w.namespaces.push(serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap());
        for (j, p) in ["a", "b", "c"].into_iter().enumerate() {
            w.pods.push(
                serde_json::from_value(json!({
                    "metadata": {"name": p, "namespace": ns, "labels": {"pod": p}},
                    "spec": {"containers": [{"name": "c", "image": "agnhost", "ports": [
                        {"name": "http", "containerPort": 80, "protocol": "TCP"},
                        {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
                    "status": {"phase": "Running", "podIP": format!("10.244.{i}.{}", j + 1)}
                }))
                .unwrap(),
            );
        }
    }
    w
}

impl World {
    fn policy(mut self, ns: &str, name: &str, spec: Value) -> World {
        self.policies
            .push(serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap());
        self
    }
    fn eval(&self, opts: Options) -> Evaluator {
        Evaluator::new(Input::from_k8s(&self.namespaces, &self.pods, &self.policies).expect("valid input"), opts)
    }
}

fn pod(ev: &Evaluator, s: &str) -> Endpoint {
    let (ns, name) = s.split_once('/').unwrap();
    Endpoint::Pod(ev.pod(ns, name).unwrap_or_else(|| panic!("no pod {s}")))
}

fn can(ev: &Evaluator, from: &str, to: &str, port: u16) -> bool {
    ev.check(pod(ev, from), pod(ev, to), port, Protocol::Tcp).allowed
}

#[test]
fn without_policies_everything_is_allowed() {
    let ev = world().eval(Options::default());
    for from in ["x/a", "y/b", "z/c"] {
        for to in ["x/a", "y/c", "z/b"] {
            assert!(can(&ev, from, to, 80), "{from} -> {to}");
        }
    }
    let v = ev.check(pod(&ev, "x/a"), pod(&ev, "y/b"), 80, Protocol::Tcp);
    assert!(v.explanation.contains("not isolated"), "{}", v.explanation);
}

#[test]
fn default_deny_ingress_blocks_all_inbound_but_not_outbound() {
    let ev =
        world().policy("x", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]})).eval(Options::default());
    assert!(!can(&ev, "x/b", "x/a", 80));
    assert!(!can(&ev, "y/a", "x/a", 80));
    assert!(can(&ev, "x/a", "y/a", 80), "egress is not isolated");
    assert!(can(&ev, "x/a", "x/a", 80), "a pod reaches itself");
    let v = ev.check(pod(&ev, "y/a"), pod(&ev, "x/a"), 80, Protocol::Tcp);
    assert_eq!(v.explanation, "denied: ingress to x/a is isolated by x/deny and no rule allows from y/a on TCP/80");
}

#[test]
fn default_deny_egress_blocks_all_outbound() {
    let ev =
        world().policy("x", "deny", json!({"podSelector": {}, "policyTypes": ["Egress"]})).eval(Options::default());
    assert!(!can(&ev, "x/a", "x/b", 80));
    assert!(!can(&ev, "x/a", "y/a", 80));
    assert!(can(&ev, "y/a", "x/a", 80), "ingress is not isolated");
}

#[test]
fn allow_same_namespace() {
    let ev = world()
        .policy("x", "same-ns", json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}))
        .eval(Options::default());
    assert!(can(&ev, "x/b", "x/a", 80));
    assert!(!can(&ev, "y/b", "x/a", 80));
    assert!(!can(&ev, "z/a", "x/c", 80));
}

#[test]
fn namespace_selector_selects_every_pod_of_matching_namespaces() {
    let ev = world()
        .policy(
            "x",
            "from-team-b",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]}),
        )
        .eval(Options::default());
    assert!(can(&ev, "y/a", "x/a", 80));
    assert!(can(&ev, "y/c", "x/a", 80));
    assert!(!can(&ev, "z/a", "x/a", 80));
    assert!(!can(&ev, "x/b", "x/a", 80), "own namespace is not team=b");
    assert!(can(&ev, "z/a", "x/b", 80), "x/b is not selected by the policy");
}

#[test]
fn namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or() {
    let and = world()
        .policy(
            "x",
            "and",
            json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )
        .eval(Options::default());
    assert!(can(&and, "y/b", "x/a", 80));
    assert!(!can(&and, "y/a", "x/a", 80));
    assert!(!can(&and, "x/b", "x/a", 80));
    let or = world()
        .policy(
            "x",
            "or",
            json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "b"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        )
        .eval(Options::default());
    assert!(can(&or, "y/a", "x/a", 80));
    assert!(can(&or, "x/b", "x/a", 80));
    assert!(!can(&or, "z/b", "x/a", 80), "pod=b alone means pod=b in the policy's namespace");
}

#[test]
fn match_expressions_and_empty_namespace_selector() {
    let ev = world()
        .policy(
            "x",
            "expr",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {},
            "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "c"]}]}}]}]}),
        )
        .eval(Options::default());
    assert!(can(&ev, "z/a", "x/b", 80));
    assert!(can(&ev, "y/c", "x/b", 80));
    assert!(!can(&ev, "y/b", "x/b", 80));
}

#[test]
fn named_numeric_and_ranged_ports() {
    let ev = world()
        .policy("x", "http", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": "http"}]}]}))
        .policy("x", "range", json!({"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]}))
        .policy("x", "udp", json!({"podSelector": {"matchLabels": {"pod": "c"}}, "ingress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}))
        .eval(Options::default());
    assert!(can(&ev, "y/a", "x/a", 80), "named port http resolves to 80 on x/a");
    assert!(!can(&ev, "y/a", "x/a", 81));
    assert!(can(&ev, "y/a", "x/b", 32000));
    assert!(can(&ev, "y/a", "x/b", 32768));
    assert!(!can(&ev, "y/a", "x/b", 32769));
    assert!(!can(&ev, "y/a", "x/c", 53), "TCP is not UDP");
    assert!(ev.check(pod(&ev, "y/a"), pod(&ev, "x/c"), 53, Protocol::Udp).allowed);
    let v = ev.check(pod(&ev, "y/a"), pod(&ev, "x/a"), 80, Protocol::Tcp);
    assert_eq!(
        v.explanation,
        "allowed: egress from y/a is not isolated (no policy selects it for egress); ingress to x/a allowed by x/http ingress rule 0"
    );
}

#[test]
fn named_ports_resolve_on_the_destination() {
    let mut w = world();
    // x/c's container calls its port 8080 "http".
    w.pods[2] = serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "x", "labels": {"pod": "c"}},
        "spec": {"containers": [{"name": "c", "image": "agnhost", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.244.0.3"}}))
    .unwrap();
    let ev = w
        .policy(
            "y",
            "egress-http",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}),
        )
        .eval(Options::default());
    assert!(can(&ev, "y/a", "x/c", 8080));
    assert!(!can(&ev, "y/a", "x/c", 80));
    assert!(can(&ev, "y/a", "x/a", 80));
}

#[test]
fn egress_to_cluster_dns_only() {
    let mut w = world();
    w.namespaces.push(
        serde_json::from_value(
            json!({"metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}}),
        )
        .unwrap(),
    );
    w.pods.push(serde_json::from_value(json!({"metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": [{"name": "c", "image": "coredns"}]}, "status": {"phase": "Running", "podIP": "10.244.9.9"}})).unwrap());
    let ev = w
        .policy(
            "x",
            "dns",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
        )
        .eval(Options::default());
    let dns = pod(&ev, "kube-system/coredns");
    assert!(ev.check(pod(&ev, "x/a"), dns, 53, Protocol::Udp).allowed);
    assert!(ev.check(pod(&ev, "x/a"), dns, 53, Protocol::Tcp).allowed);
    assert!(!ev.check(pod(&ev, "x/a"), dns, 80, Protocol::Tcp).allowed);
    assert!(!can(&ev, "x/a", "y/a", 53));
    assert!(!ev.check(pod(&ev, "x/a"), Endpoint::External("8.8.8.8".parse().unwrap()), 53, Protocol::Udp).allowed);
}

#[test]
fn ip_blocks_with_exceptions() {
    let w = world().policy(
        "x",
        "internet",
        json!({"podSelector": {}, "policyTypes": ["Egress", "Ingress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.169.254/32"]}}]}],
        "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 80}]}]}),
    );
    let ev = w.eval(Options::default());
    let ext = |s: &str| Endpoint::External(s.parse().unwrap());
    assert!(ev.check(pod(&ev, "x/a"), ext("8.8.8.8"), 443, Protocol::Tcp).allowed);
    assert!(!ev.check(pod(&ev, "x/a"), ext("10.1.2.3"), 443, Protocol::Tcp).allowed);
    assert!(!ev.check(pod(&ev, "x/a"), ext("169.254.169.254"), 80, Protocol::Tcp).allowed);
    assert!(ev.check(ext("192.0.2.7"), pod(&ev, "x/a"), 80, Protocol::Tcp).allowed);
    assert!(!ev.check(ext("192.0.2.7"), pod(&ev, "x/a"), 22, Protocol::Tcp).allowed);
    assert!(!ev.check(ext("198.51.100.1"), pod(&ev, "x/a"), 80, Protocol::Tcp).allowed);
    // By default an ipBlock does not match pod IPs; with the option it does.
    assert!(!can(&ev, "x/a", "y/a", 80), "y/a's IP 10.244.1.1 is excepted anyway");
    let w2 = world().policy(
        "x",
        "pods-by-ip",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]}]}),
    );
    assert!(!can(&w2.eval(Options::default()), "x/a", "y/a", 80));
    assert!(can(&w2.eval(Options { ipblock_matches_pods: true }), "x/a", "y/a", 80));
    assert!(!ev.external_ingress(ev.pod("x", "a").unwrap()).is_empty());
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() {
    // Only egress rules and no policyTypes: the policy also isolates ingress.
    let ev = world()
        .policy(
            "x",
            "egress-only",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"to": [{"podSelector": {}}]}]}),
        )
        .eval(Options::default());
    assert!(!can(&ev, "x/b", "x/a", 80), "ingress isolated by default");
    assert!(can(&ev, "x/a", "x/b", 80));
    assert!(!can(&ev, "x/a", "y/a", 80));
}

#[test]
fn rules_add_up_across_policies_and_empty_rules_allow_all() {
    let ev = world()
        .policy("x", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]}))
        .policy(
            "x",
            "allow-b",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]}),
        )
        .policy("x", "allow-all-to-c", json!({"podSelector": {"matchLabels": {"pod": "c"}}, "ingress": [{}]}))
        .eval(Options::default());
    assert!(can(&ev, "y/a", "x/a", 80));
    assert!(!can(&ev, "z/a", "x/a", 80));
    assert!(can(&ev, "z/a", "x/c", 80));
    assert!(ev.check(Endpoint::External("203.0.113.9".parse().unwrap()), pod(&ev, "x/c"), 443, Protocol::Tcp).allowed);
}

#[test]
fn bad_input_names_the_field() {
    let bad = |spec: Value| {
        let w = world().policy("x", "bad", spec);
        Input::from_k8s(&w.namespaces, &w.pods, &w.policies).unwrap_err().to_string()
    };
    assert_eq!(
        bad(json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]})),
        "NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/33\" is not a valid CIDR"
    );
    assert!(
        bad(json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}))
            .contains("spec.podSelector.matchExpressions[0]")
    );
    assert!(
        bad(json!({"podSelector": {}, "egress": [{"ports": [{"port": "http", "endPort": 90}]}]}))
            .contains("spec.egress[0].ports[0].endPort")
    );
    assert!(bad(json!({"podSelector": {}, "ingress": [{"from": [{}]}]})).contains("must specify a peer"));
    assert!(bad(json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}]})).contains("not within"));
}

#[test]
fn matrix_agrees_with_check() {
    let ev = world()
        .policy("x", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
        .policy("x", "ab", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}], "ports": [{"port": 80}]}]}))
        .policy("x", "b-out", json!({"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]}))
        .eval(Options::default());
    let m = ev.matrix(Some((Protocol::Tcp, 80)));
    let any = ev.matrix(None);
    let n = ev.input().pods.len();
    for s in 0..n {
        for d in 0..n {
            let c = ev.check(Endpoint::Pod(s), Endpoint::Pod(d), 80, Protocol::Tcp).allowed;
            assert_eq!(m[s].contains(d), c, "{} -> {}", ev.pod_name(s), ev.pod_name(d));
            assert!(!c || any[s].contains(d));
        }
    }
    assert!(m[ev.pod("x", "b").unwrap()].contains(ev.pod("x", "a").unwrap()));
}
