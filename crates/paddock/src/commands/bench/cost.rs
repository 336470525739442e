//! What a unit of work (a warm claim, a refilled pool pod, a cold start, a
//! tenant) costs the API server in requests: Paddock's own, counted where
//! they are sent (`paddock_kube_requests_total`), and the rest the API
//! server served meanwhile (`apiserver_request_total` minus Paddock's: the
//! scheduler, kubelets, controllers, and the benchmark's own reads), each by
//! `VERB resource`. WATCH is left out: a watch is opened once, not per unit.
//! On kubesim the others are the simulated controllers' writes
//! (`WRITE* pods/status`: the scheduler, kubelets, endpoints controller...),
//! which a real cluster's make as requests.

use super::target::Counts;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Every component of Paddock's (`paddock_kube_requests_total`'s `component`).
pub const ALL: &[&str] = &["api", "instance", "pool", "tenant", "template"];

/// Requests by `VERB resource`.
pub type ByRequest = BTreeMap<String, u64>;

/// Requests per unit of work.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Cost {
    /// Units the figures are divided by.
    pub units: usize,
    /// Paddock's own requests per unit, by `VERB resource`.
    pub paddock: BTreeMap<String, f64>,
    pub paddock_total: f64,
    /// The API server's other requests per unit in the same time (None
    /// when its metrics could not be read).
    pub cluster: Option<BTreeMap<String, f64>>,
    pub cluster_total: Option<f64>,
}

/// Paddock's requests of `components` from a snapshot of
/// [`controller::requests::Requests`], WATCH left out.
pub fn paddock_of(snapshot: &[((String, String, String), u64)], components: &[&str]) -> ByRequest {
    let mut out = ByRequest::new();
    for ((component, verb, resource), n) in snapshot {
        if components.contains(&component.as_str()) && verb != "WATCH" {
            *out.entry(format!("{verb} {resource}")).or_default() += n;
        }
    }
    out
}

/// `after - before`, entry by entry, zeros dropped.
pub fn minus(after: &ByRequest, before: &ByRequest) -> ByRequest {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn per(counts: &ByRequest, units: usize) -> (BTreeMap<String, f64>, f64) {
    let u = units.max(1) as f64;
    let map: BTreeMap<String, f64> = counts.iter().map(|(k, n)| (k.clone(), *n as f64 / u)).collect();
    let total = counts.values().sum::<u64>() as f64 / u;
    (map, total)
}

impl Cost {
    /// The cost of `units` from Paddock's requests in a window (`paddock`,
    /// already a difference), all of Paddock's in it (`paddock_all`, to
    /// subtract from the server's), and the server's counts at its start and
    /// end.
    pub fn of(units: usize, paddock: &ByRequest, paddock_all: &ByRequest, server: Option<(&Counts, &Counts)>) -> Cost {
        let (map, total) = per(paddock, units);
        let cluster = server.map(|(a, b)| {
            let mut served = minus(&b.by, &a.by);
            served.retain(|k, _| !k.starts_with("WATCH "));
            let others: ByRequest = served
                .into_iter()
                .filter_map(|(k, n)| {
                    let rest = n.saturating_sub(paddock_all.get(&k).copied().unwrap_or(0));
                    (rest > 0).then_some((k, rest))
                })
                .collect();
            per(&others, units)
        });
        Cost {
            units,
            paddock: map,
            paddock_total: total,
            cluster_total: cluster.as_ref().map(|c| c.1),
            cluster: cluster.map(|c| c.0),
        }
    }

    /// One line: the total and each request, e.g.
    /// `4.0 (POST instances 1.0, PUT pods 1.0, …)`, then the cluster's total.
    pub fn line(&self, out: &mut dyn Write, what: &str) -> anyhow::Result<()> {
        let each: Vec<String> = self.paddock.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        write!(
            out,
            "Paddock's requests per {what}: {:.2} ({}) over {}",
            self.paddock_total,
            each.join(", "),
            self.units
        )?;
        match (&self.cluster, self.cluster_total) {
            (Some(map), Some(c)) => {
                let each: Vec<String> =
                    map.iter().filter(|(_, v)| **v >= 0.05).map(|(k, v)| format!("{k} {v:.2}")).collect();
                writeln!(out, "; the API server's others meanwhile: {c:.2} per {what} ({})", each.join(", "))
            }
            _ => writeln!(out),
        }?;
        Ok(())
    }
}

/// The cost of `units` from a controller process's request snapshots
/// before and after (None when it has none) and the server's counts.
pub fn of_process(
    units: usize,
    before: Option<controller::requests::Snapshot>,
    after: Option<controller::requests::Snapshot>,
    server: Option<(&Counts, &Counts)>,
) -> Option<Cost> {
    let (a, b) = before.zip(after)?;
    let mine = minus(&paddock_of(&b, ALL), &paddock_of(&a, ALL));
    Some(Cost::of(units, &mine, &mine, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_is_paddocks_requests_per_unit_and_the_rest_of_the_servers() {
        let snap = |n: u64| {
            vec![
                (("instance".to_string(), "PUT".to_string(), "pods".to_string()), n),
                (("instance".to_string(), "WATCH".to_string(), "pods".to_string()), 1),
                (("pool".to_string(), "POST".to_string(), "pods".to_string()), n),
            ]
        };
        let (a, b) = (snap(10), snap(30));
        let claims = minus(&paddock_of(&b, &["instance"]), &paddock_of(&a, &["instance"]));
        let all = minus(&paddock_of(&b, &["instance", "pool"]), &paddock_of(&a, &["instance", "pool"]));
        let server = |puts: u64, posts: u64, binds: u64| Counts {
            by: [("PUT pods", puts), ("POST pods", posts), ("POST pods/binding", binds), ("WATCH pods", 5)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..Counts::default()
        };
        let (s0, s1) = (server(10, 10, 0), server(30, 30, 20));
        let c = Cost::of(20, &claims, &all, Some((&s0, &s1)));
        assert_eq!(c.paddock_total, 1.0);
        assert_eq!(c.paddock.get("PUT pods"), Some(&1.0));
        // The server served 20 PUTs and 20 POSTs of Paddock's, and 20 bindings of the scheduler's.
        assert_eq!(c.cluster_total, Some(1.0));
        assert_eq!(c.cluster.unwrap().get("POST pods/binding"), Some(&1.0));
    }
}
