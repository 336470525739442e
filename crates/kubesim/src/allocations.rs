//! What the Service allocators hold: cluster IPs and node ports, each with
//! the Service that has it. The real API server keeps these in allocator
//! bitmaps beside the objects; here they are indexed as Services are stored
//! and removed, so allocating for a new Service does not read every Service.

use crate::registry::ResId;
use crate::store::{Key, Obj};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Default)]
pub struct Allocations {
    services: Option<ResId>,
    ips: HashMap<Box<str>, Key>,
    ports: HashMap<i64, Key>,
}

#[derive(Deserialize, Default)]
struct Service {
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(default)]
    ports: Vec<Port>,
}

#[derive(Deserialize)]
struct Port {
    #[serde(rename = "nodePort")]
    node_port: Option<i64>,
}

fn parse(o: &Obj) -> Spec {
    serde_json::from_slice::<Service>(&o.raw).unwrap_or_default().spec
}

impl Allocations {
    /// Says which resource is Services (the store knows types only by id).
    pub fn track(&mut self, services: ResId) {
        self.services = Some(services);
    }

    /// An object of `res` was stored (`new`) or removed, replacing `old`.
    pub fn observe(&mut self, res: ResId, key: &Key, old: Option<&Obj>, new: Option<&Obj>) {
        if self.services != Some(res) {
            return;
        }
        if let Some(o) = old {
            let spec = parse(o);
            if let Some(ip) = spec.cluster_ip
                && self.ips.get(ip.as_str()) == Some(key)
            {
                self.ips.remove(ip.as_str());
            }
            for p in spec.ports.iter().filter_map(|p| p.node_port) {
                if self.ports.get(&p) == Some(key) {
                    self.ports.remove(&p);
                }
            }
        }
        if let Some(o) = new {
            let spec = parse(o);
            if let Some(ip) = spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None") {
                self.ips.insert(ip.into(), key.clone());
            }
            for p in spec.ports.iter().filter_map(|p| p.node_port) {
                self.ports.insert(p, key.clone());
            }
        }
    }

    /// Whether a Service other than `me` holds cluster IP `ip`.
    pub fn ip_taken(&self, ip: &str, me: &Key) -> bool {
        self.ips.get(ip).is_some_and(|k| k != me)
    }

    /// Whether a Service other than `me` holds node port `port`.
    pub fn port_taken(&self, port: i64, me: &Key) -> bool {
        self.ports.get(&port).is_some_and(|k| k != me)
    }
}

/// A stable spread of start points for allocation (FNV-1a of the Service's
/// namespace and name), so Services with similar names do not all probe
/// from the same place.
pub fn seed(ns: &str, name: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in ns.bytes().chain([b'/']).chain(name.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Obj {
        Store::encode(&v, 2, &crate::store::Extract { field_paths: &[] })
    }

    #[test]
    fn held_until_released_and_not_by_oneself() {
        let mut a = Allocations::default();
        a.track(7);
        let k: Key = ("ns".into(), "web".into());
        let other: Key = ("ns".into(), "db".into());
        let v1 = obj(json!({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080}]}}));
        a.observe(7, &k, None, Some(&v1));
        assert!(a.ip_taken("10.96.0.10", &other) && !a.ip_taken("10.96.0.10", &k));
        assert!(a.port_taken(30080, &other) && !a.port_taken(30081, &other));
        // Another type with the same shape is not a Service.
        a.observe(8, &other, None, Some(&obj(json!({"spec": {"clusterIP": "10.96.0.11"}}))));
        assert!(!a.ip_taken("10.96.0.11", &k));
        // An update that drops the node port releases it; a removal releases the IP.
        let v2 = obj(json!({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}));
        a.observe(7, &k, Some(&v1), Some(&v2));
        assert!(!a.port_taken(30080, &other) && a.ip_taken("10.96.0.10", &other));
        a.observe(7, &k, Some(&v2), None);
        assert!(!a.ip_taken("10.96.0.10", &other));
        let headless = obj(json!({"spec": {"clusterIP": "None"}}));
        a.observe(7, &k, None, Some(&headless));
        assert!(!a.ip_taken("None", &other), "headless Services hold no IP");
    }
}
