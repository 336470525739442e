//! The tenant isolation report behind `paddock audit`: per tenant (namespaces
//! carrying a tenant label), every path to another tenant, every pod reachable
//! from outside the cluster, and every pod no policy selects.

use crate::{Endpoint, Evaluator};
use std::collections::BTreeMap;

/// What the audit found.
pub struct Report {
    pub tenants: BTreeMap<String, TenantReport>,
    pub cross_tenant_paths: usize,
}

#[derive(Default)]
pub struct TenantReport {
    pub namespaces: Vec<String>,
    pub pods: usize,
    /// (from, to, ports) for paths leaving this tenant for another.
    pub outbound: Vec<(String, String, String)>,
    pub external: Vec<(String, String)>,
    pub without_policy: Vec<String>,
}

/// Builds the report. A namespace's tenant is its label's value (or its name when the value is empty).
pub fn report(ev: &Evaluator, tenant_label: &str) -> Report {
    let input = ev.input();
    let tenant_of_ns: BTreeMap<&str, String> = input
        .namespaces
        .iter()
        .filter_map(|ns| {
            ns.labels
                .get(tenant_label)
                .map(|t| (ns.name.as_str(), if t.is_empty() { ns.name.clone() } else { t.clone() }))
        })
        .collect();
    let mut tenants: BTreeMap<String, TenantReport> = BTreeMap::new();
    for (ns, t) in &tenant_of_ns {
        tenants.entry(t.clone()).or_default().namespaces.push(ns.to_string());
    }
    let tenant = |i: usize| tenant_of_ns.get(input.pods[i].namespace.as_str());
    let matrix = ev.matrix(None);
    let mut cross = 0;
    for (s, row) in matrix.iter().enumerate() {
        let Some(ts) = tenant(s) else { continue };
        let entry = tenants.entry(ts.clone()).or_default();
        entry.pods += 1;
        if !ev.has_policy(s) {
            entry.without_policy.push(ev.pod_name(s));
        }
        let ext = ev.external_ingress(s);
        if !ext.is_empty() {
            entry.external.push((ev.pod_name(s), ext.to_string()));
        }
        for d in row.ones() {
            if let Some(td) = tenant(d)
                && td != ts
            {
                cross += 1;
                let ports = ev.allowed_ports(Endpoint::Pod(s), Endpoint::Pod(d));
                entry.outbound.push((ev.pod_name(s), ev.pod_name(d), ports.to_string()));
            }
        }
    }
    Report { tenants, cross_tenant_paths: cross }
}
