//! Endpoints and EndpointSlices follow the pods a Service selects (ready ones as
//! addresses, others as not-ready), and LoadBalancer Services get an address.

use super::{Sim, is_deleting, log_err, name_of, ns_of, uid_of};
use crate::selector::Selector;
use crate::store::EventType;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
const SLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        == Some("True")
}

/// Resolves a service targetPort (number or container port name) on a pod.
fn target_port(pod: &Value, tp: &Value) -> Option<i64> {
    match tp {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default())
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort").and_then(Value::as_i64)),
        _ => None,
    }
}

/// Which Services select which pods, so a pod change recomputes only the
/// Services it enters or leaves (upstream's controller also keys its work by
/// Service).
#[derive(Default)]
pub struct Endpoints {
    selectors: HashMap<String, BTreeMap<String, Selector>>,
    /// (namespace, pod) → the Services selecting it.
    members: HashMap<(String, String), Vec<String>>,
    /// (namespace, Service) → the pods it selects.
    pods_of: HashMap<(String, String), BTreeSet<String>>,
    dirty: BTreeMap<String, BTreeSet<String>>,
}

impl Endpoints {
    fn link(&mut self, ns: &str, pod: &str, svc: &str, yes: bool) {
        let key = (ns.to_string(), pod.to_string());
        let svcs = self.members.entry(key).or_default();
        svcs.retain(|s| s != svc);
        let pods = self.pods_of.entry((ns.to_string(), svc.to_string())).or_default();
        if yes {
            svcs.push(svc.to_string());
            pods.insert(pod.to_string());
        } else {
            pods.remove(pod);
        }
    }

    pub fn service_event(&mut self, sim: &Sim, typ: EventType, svc: &Value) {
        let (ns, name) = (ns_of(svc).to_string(), name_of(svc).to_string());
        let selector = svc.pointer("/spec/selector").and_then(Value::as_object).filter(|m| !m.is_empty());
        match selector {
            Some(m) if typ != EventType::Deleted => {
                let sel = Selector::from_map(m);
                if self.selectors.get(&ns).and_then(|x| x.get(&name)) != Some(&sel) {
                    // Which pods the new selector picks, from the store's interned labels.
                    let picked: BTreeSet<String> = sim.c.read(|st| {
                        st.store
                            .range(sim.ids.pods, Some(&ns), None)
                            .filter(|(_, o)| sel.matches_labels(&o.labels))
                            .map(|((_, pod), _)| pod.to_string())
                            .collect()
                    });
                    let before = self.pods_of.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
                    for pod in before.difference(&picked) {
                        self.link(&ns, pod, &name, false);
                    }
                    for pod in &picked {
                        self.link(&ns, pod, &name, true);
                    }
                    self.selectors.entry(ns.clone()).or_default().insert(name.clone(), sel);
                }
            }
            _ => {
                self.selectors.get_mut(&ns).map(|x| x.remove(&name));
                for pod in self.pods_of.remove(&(ns.clone(), name.clone())).unwrap_or_default() {
                    if let Some(svcs) = self.members.get_mut(&(ns.clone(), pod)) {
                        svcs.retain(|s| s != &name);
                    }
                }
            }
        }
        self.dirty.entry(ns).or_default().insert(name);
    }

    pub fn pod_event(&mut self, typ: EventType, pod: &Value) {
        let (ns, name) = (ns_of(pod).to_string(), name_of(pod).to_string());
        let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
        let now: Vec<String> = match (typ, self.selectors.get(&ns)) {
            (EventType::Deleted, _) | (_, None) => Vec::new(),
            (_, Some(sels)) => sels.iter().filter(|(_, sel)| sel.matches_map(labels)).map(|(s, _)| s.clone()).collect(),
        };
        let before = self.members.remove(&(ns.clone(), name.clone())).unwrap_or_default();
        for svc in &before {
            if let Some(pods) = self.pods_of.get_mut(&(ns.clone(), svc.clone())) {
                pods.remove(&name);
            }
        }
        for svc in &now {
            self.link(&ns, &name, svc, true);
        }
        if typ == EventType::Deleted {
            self.members.remove(&(ns.clone(), name));
        }
        self.dirty.entry(ns).or_default().extend(before.into_iter().chain(now));
    }

    /// Recomputes the Services that changed, or whose pods did.
    pub fn flush(&mut self, sim: &Sim) {
        for (ns, services) in std::mem::take(&mut self.dirty) {
            for svc in services {
                let key = (ns.clone(), svc.clone());
                let pods: Vec<Value> = self
                    .pods_of
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| sim.c.get_value("", "pods", &ns, p))
                    .collect();
                reconcile_service(sim, &ns, &svc, &pods);
            }
        }
    }
}

fn reconcile_service(sim: &Sim, ns: &str, name: &str, pods: &[Value]) {
    let existing = sim.c.get_value("", "endpoints", ns, name);
    let Some(svc) = sim.c.get_value("", "services", ns, name).filter(|s| !is_deleting(s)) else {
        // The Service is gone: so are the Endpoints we made for it (slices go with their owner).
        if existing
            .as_ref()
            .is_some_and(|ep| ep.pointer(&format!("/metadata/labels/{}", MANAGED_BY.replace('/', "~1"))).is_some())
        {
            sim.delete(sim.ids.endpoints, ns, name, Default::default());
        }
        return;
    };
    let svc = &svc;
    if svc.pointer("/spec/selector").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
        return;
    }
    {
        let publish_not_ready = svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool).unwrap_or(false);
        let members: Vec<&Value> = pods
            .iter()
            .filter(|p| p.pointer("/status/podIP").and_then(Value::as_str).is_some())
            .filter(|p| !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")))
            .collect();
        let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut ready_addrs = Vec::new();
        let mut not_ready = Vec::new();
        let mut slice_eps = Vec::new();
        let mut ep_ports = Vec::new();
        for p in &members {
            let addr = json!({
                "ip": p.pointer("/status/podIP"),
                "nodeName": p.pointer("/spec/nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": name_of(p), "uid": uid_of(p)}
            });
            let terminating = is_deleting(p);
            let is_ready = ready(p) && !terminating;
            if (is_ready || publish_not_ready) && !terminating {
                ready_addrs.push(addr);
            } else {
                not_ready.push(addr);
            }
            slice_eps.push(json!({
                "addresses": [p.pointer("/status/podIP")],
                "conditions": {"ready": is_ready || publish_not_ready, "serving": ready(p), "terminating": terminating},
                "nodeName": p.pointer("/spec/nodeName"),
                "targetRef": {"kind": "Pod", "namespace": ns, "name": name_of(p), "uid": uid_of(p)}
            }));
        }
        for sp in &ports {
            let tp = sp.get("targetPort").cloned().unwrap_or(json!(null));
            let port = members.iter().find_map(|p| target_port(p, &tp)).or_else(|| tp.as_i64()).unwrap_or(0);
            let mut ep = json!({"port": port, "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP"))});
            if let Some(n) = sp.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                ep["name"] = json!(n);
            }
            ep_ports.push(ep);
        }
        let name = name.to_string();
        let mut subsets = vec![];
        if !ready_addrs.is_empty() || !not_ready.is_empty() {
            let mut s = json!({"ports": ep_ports});
            if !ready_addrs.is_empty() {
                s["addresses"] = json!(ready_addrs);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            subsets.push(s);
        }
        let mut labels = svc.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        labels[MANAGED_BY] = json!("endpoint-controller");
        let want_subsets = json!(subsets);
        match &existing {
            Some(e) if e.get("subsets").unwrap_or(&json!([])) == &want_subsets => {}
            Some(_) => {
                log_err(
                    "update endpoints",
                    sim.c.modify(sim.ids.endpoints, ns, &name, None, "endpoint-controller", |e| {
                        e["subsets"] = want_subsets.clone();
                        e["metadata"]["labels"] = labels.clone();
                    }),
                );
            }
            None => {
                log_err(
                    "create endpoints",
                    sim.create(
                        sim.ids.endpoints,
                        ns,
                        json!({"metadata": {"name": name, "labels": labels}, "subsets": want_subsets}),
                        "endpoint-controller",
                    ),
                );
            }
        }
        // One EndpointSlice per Service, owned by it.
        let slice_name = format!("{name}-{}", &uid_of(svc).replace('-', "")[..5.min(uid_of(svc).len())]);
        let mut slice_ports = ep_ports.clone();
        for p in slice_ports.iter_mut() {
            if p.get("name").is_none() {
                p["name"] = json!("");
            }
        }
        let slice_labels =
            json!({"kubernetes.io/service-name": name, SLICE_MANAGED_BY: "endpointslice-controller.k8s.io"});
        let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid_of(svc), "controller": true, "blockOwnerDeletion": true}]);
        match sim.c.get_value("discovery.k8s.io", "endpointslices", ns, &slice_name) {
            Some(s) if s.get("endpoints") == Some(&json!(slice_eps)) && s.get("ports") == Some(&json!(slice_ports)) => {
            }
            Some(_) => {
                log_err(
                    "update endpointslice",
                    sim.c.modify(sim.ids.slices, ns, &slice_name, None, "endpointslice-controller.k8s.io", |s| {
                        s["endpoints"] = json!(slice_eps);
                        s["ports"] = json!(slice_ports);
                    }),
                );
            }
            None => {
                log_err(
                    "create endpointslice",
                    sim.create(
                        sim.ids.slices,
                        ns,
                        json!({"metadata": {"name": slice_name, "labels": slice_labels, "ownerReferences": owner},
                            "addressType": "IPv4", "endpoints": slice_eps, "ports": slice_ports}),
                        "endpointslice-controller.k8s.io",
                    ),
                );
            }
        }
    }
}

/// A simulated cloud load balancer: LoadBalancer Services get an ingress IP.
pub fn assign_load_balancer(sim: &Sim, svc: &Value) {
    if svc.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer")
        || svc.pointer("/status/loadBalancer/ingress").is_some()
        || is_deleting(svc)
    {
        return;
    }
    let uid = uid_of(svc);
    let h = uid.bytes().fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    let ip = format!("172.30.{}.{}", (h >> 8) % 256, 1 + h % 254);
    let ns = svc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    log_err(
        "load balancer",
        sim.c.modify(sim.ids.services, ns, name_of(svc), Some("status"), "service-controller", |s| {
            s["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip, "ipMode": "VIP"}]});
        }),
    );
}
