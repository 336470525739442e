//! Properties that must hold for any cluster: allowing more never removes a
//! path, a default-deny ingress policy leaves no way in, and the order of the
//! objects does not matter.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use netpol::selector::Selector;
use netpol::{Evaluator, Input, NamespaceInfo, Options, Peer, PodInfo, PolicyInfo, PortMatch, Protocol, Rule};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
        prop::sample::select(vec!["1", "2"]).prop_map(String::from),
        0..3,
    )
}

fn selector() -> impl Strategy<Value = Selector> {
    (labels(), prop::option::of(prop::sample::select(vec!["a", "b"]))).prop_map(|(m, exists)| {
        let ls = LabelSelector {
            match_labels: Some(m),
            match_expressions: exists.map(|k| {
                vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: k.into(),
                    operator: "Exists".into(),
                    values: None,
                }]
            }),
        };
        Selector::compile(&ls, "test").expect("valid selector")
    })
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        (prop::option::of(selector()), selector()).prop_map(|(ns, p)| Peer::Pods { namespaces: ns, pods: Some(p) }),
        selector().prop_map(|ns| Peer::Pods { namespaces: Some(ns), pods: None }),
        prop::sample::select(vec!["10.0.0.0/8", "0.0.0.0/0", "192.0.2.0/24"])
            .prop_map(|c| Peer::Block { cidr: c.parse().expect("cidr"), except: vec![] }),
    ]
}

fn port() -> impl Strategy<Value = PortMatch> {
    prop::sample::select(vec![
        PortMatch::AnyPort(Protocol::Tcp),
        PortMatch::Range(Protocol::Tcp, 80, 80),
        PortMatch::Range(Protocol::Tcp, 79, 81),
        PortMatch::Named(Protocol::Tcp, "http".into()),
        PortMatch::Range(Protocol::Udp, 53, 53),
    ])
}

fn rule() -> impl Strategy<Value = Rule> {
    (prop::collection::vec(peer(), 0..3), prop::collection::vec(port(), 0..3))
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

const NAMESPACES: [&str; 3] = ["n0", "n1", "n2"];

fn policy() -> impl Strategy<Value = PolicyInfo> {
    (
        0..3usize,
        selector(),
        prop::collection::vec(rule(), 0..3),
        prop::collection::vec(rule(), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ns, sel, ingress, egress, ai, ae)| PolicyInfo {
            namespace: NAMESPACES[ns].into(),
            name: format!("p-{}", ingress.len() * 10 + egress.len()),
            pod_selector: sel,
            ingress,
            egress,
            affects_ingress: ai || !ae,
            affects_egress: ae,
        })
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop::collection::vec(labels(), 3),
        prop::collection::vec((0..3usize, labels(), any::<bool>()), 1..8),
        prop::collection::vec(policy(), 0..5),
    )
        .prop_map(|(ns_labels, pods, mut policies)| {
            for (i, p) in policies.iter_mut().enumerate() {
                p.name = format!("{}-{i}", p.name);
            }
            Input {
                namespaces: ns_labels
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut l)| {
                        l.insert("kubernetes.io/metadata.name".into(), NAMESPACES[i].into());
                        NamespaceInfo { name: NAMESPACES[i].into(), labels: l }
                    })
                    .collect(),
                pods: pods
                    .into_iter()
                    .enumerate()
                    .map(|(i, (ns, l, http))| PodInfo {
                        namespace: NAMESPACES[ns].into(),
                        name: format!("pod-{i}"),
                        labels: l,
                        ips: vec![format!("10.244.0.{}", i + 1).parse().expect("ip")],
                        ports: if http { vec![("http".into(), Protocol::Tcp, 80)] } else { vec![] },
                    })
                    .collect(),
                policies,
            }
        })
}

/// Paths by name, so that results of differently ordered inputs compare.
fn paths(ev: &Evaluator, port: Option<(Protocol, u16)>) -> BTreeSet<(String, String)> {
    let m = ev.matrix(port);
    let mut out = BTreeSet::new();
    for (s, row) in m.iter().enumerate() {
        for d in row.ones() {
            out.insert((ev.pod_name(s), ev.pod_name(d)));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn adding_an_allow_rule_never_removes_a_path(inp in input(), extra in rule(), which in any::<prop::sample::Index>(), ingress in any::<bool>()) {
        prop_assume!(!inp.policies.is_empty());
        let before = Evaluator::new(inp.clone(), Options::default());
        let mut more = inp;
        let i = which.index(more.policies.len());
        if ingress { more.policies[i].ingress.push(extra) } else { more.policies[i].egress.push(extra) }
        let after = Evaluator::new(more, Options::default());
        for port in [None, Some((Protocol::Tcp, 80)), Some((Protocol::Udp, 53))] {
            let (b, a) = (paths(&before, port), paths(&after, port));
            prop_assert!(b.is_subset(&a), "lost paths: {:?}", b.difference(&a).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_default_deny_ingress_policy_leaves_no_way_in(inp in input(), ns in 0..3usize) {
        let mut inp = inp;
        let target = NAMESPACES[ns];
        // Only egress policies remain in the namespace, plus the deny.
        for p in inp.policies.iter_mut().filter(|p| p.namespace == target) {
            p.affects_ingress = false;
            p.ingress.clear();
        }
        inp.policies.push(PolicyInfo { namespace: target.into(), name: "deny".into(), pod_selector: Selector::everything(),
            ingress: vec![], egress: vec![], affects_ingress: true, affects_egress: false });
        let ev = Evaluator::new(inp, Options::default());
        for (s, d) in paths(&ev, None) {
            prop_assert!(s == d || !d.starts_with(&format!("{target}/")), "{s} -> {d} despite the deny");
        }
    }

    #[test]
    fn evaluation_does_not_depend_on_object_order(inp in input()) {
        let a = Evaluator::new(inp.clone(), Options::default());
        let mut rev = inp;
        rev.pods.reverse();
        rev.policies.reverse();
        rev.namespaces.reverse();
        let b = Evaluator::new(rev, Options::default());
        for port in [None, Some((Protocol::Tcp, 80))] {
            prop_assert_eq!(paths(&a, port), paths(&b, port));
        }
    }
}
