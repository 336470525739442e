//! The scheduler: binds pending pods to nodes, honouring unschedulable nodes,
//! taints and tolerations, nodeSelector and required node affinity, and
//! allocatable cpu/memory/pods minus the requests of pods already bound.
//! Failures are reported as upstream does (PodScheduled=False, Unschedulable,
//! "0/3 nodes are available: ...").

use super::{Sim, log_err, name_of, ns_of};
use crate::selector::{Op, Requirement};
use crate::store::EventType;
use quantity::Quantity;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type PodKey = (String, String);

#[derive(Debug, Clone, Default)]
struct Usage {
    cpu: i128,
    mem: i128,
    pods: i128,
}

#[derive(Debug, Clone)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

#[derive(Debug, Clone)]
struct NodeInfo {
    labels: Map<String, Value>,
    taints: Vec<Taint>,
    unschedulable: bool,
    cpu: i128,
    mem: i128,
    pods: i128,
}

#[derive(Default)]
pub struct Scheduler {
    nodes: BTreeMap<String, NodeInfo>,
    used: HashMap<String, Usage>,
    bound: HashMap<PodKey, (String, Usage)>,
    fresh: BTreeSet<PodKey>,
    waiting: BTreeSet<PodKey>,
    pub retry_all: bool,
}

pub fn taints_of(node: &Value) -> Vec<Taint> {
    let mut out: Vec<Taint> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| Taint {
            key: t.get("key").and_then(Value::as_str).unwrap_or("").into(),
            value: t.get("value").and_then(Value::as_str).unwrap_or("").into(),
            effect: t.get("effect").and_then(Value::as_str).unwrap_or("").into(),
        })
        .collect();
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        == Some("True");
    if !ready {
        out.push(Taint {
            key: "node.kubernetes.io/not-ready".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        });
    }
    out
}

/// Upstream's Toleration.ToleratesTaint.
pub fn tolerates(tols: &[Value], t: &Taint) -> bool {
    tols.iter().any(|tol| {
        let effect = tol.get("effect").and_then(Value::as_str).unwrap_or("");
        if !effect.is_empty() && effect != t.effect {
            return false;
        }
        let key = tol.get("key").and_then(Value::as_str).unwrap_or("");
        let op = tol.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        if key.is_empty() {
            return op == "Exists";
        }
        if key != t.key {
            return false;
        }
        op == "Exists" || tol.get("value").and_then(Value::as_str).unwrap_or("") == t.value
    })
}

pub fn pod_requests(pod: &Value) -> (i128, i128) {
    let get = |c: &Value, r: &str| {
        c.pointer(&format!("/resources/requests/{r}")).and_then(Quantity::from_value).unwrap_or_default().0
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
        cpu += get(c, "cpu");
        mem += get(c, "memory");
    }
    for c in pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten() {
        cpu = cpu.max(get(c, "cpu"));
        mem = mem.max(get(c, "memory"));
    }
    (cpu, mem)
}

fn expr_matches(e: &Value, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
    let values: Vec<String> = e
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
    let num = |s: &str| s.parse::<i64>().ok();
    match op {
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (get(key).as_deref().and_then(num), values.first().and_then(|v| num(v)))
            else {
                return false;
            };
            if op == "Gt" { have > want } else { have < want }
        }
        _ => {
            let op = match op {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return false,
            };
            Requirement { key: key.into(), op }.matches(get)
        }
    }
}

/// nodeSelector and requiredDuringSchedulingIgnoredDuringExecution.
pub fn node_matches(pod: &Value, node_name: &str, labels: &Map<String, Value>) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(sel) = pod.pointer("/spec/nodeSelector").and_then(Value::as_object) {
        for (k, v) in sel {
            if label(k).as_deref() != v.as_str() {
                return false;
            }
        }
    }
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    let field = |k: &str| (k == "metadata.name").then(|| node_name.to_string());
    terms.iter().any(|t| {
        let exprs = t.get("matchExpressions").and_then(Value::as_array);
        let fields = t.get("matchFields").and_then(Value::as_array);
        if exprs.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
            return false;
        }
        exprs.into_iter().flatten().all(|e| expr_matches(e, &label))
            && fields.into_iter().flatten().all(|e| expr_matches(e, &field))
    })
}

fn phase_terminal(v: &Value) -> bool {
    matches!(v.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

impl Scheduler {
    pub fn node_event(&mut self, typ: EventType, v: &Value) {
        let name = name_of(v).to_string();
        if typ == EventType::Deleted {
            self.nodes.remove(&name);
        } else {
            let alloc = |r: &str| {
                v.pointer(&format!("/status/allocatable/{r}")).and_then(Quantity::from_value).unwrap_or_default().0
            };
            self.nodes.insert(
                name,
                NodeInfo {
                    labels: v.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default(),
                    taints: taints_of(v),
                    unschedulable: v.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false),
                    cpu: alloc("cpu"),
                    mem: alloc("memory"),
                    pods: alloc("pods"),
                },
            );
        }
        self.retry_all = true;
    }

    pub fn pod_seen(&mut self, v: &Value) {
        self.pod_event(EventType::Added, v);
    }

    fn release(&mut self, key: &PodKey) {
        if let Some((node, u)) = self.bound.remove(key) {
            let e = self.used.entry(node).or_default();
            e.cpu -= u.cpu;
            e.mem -= u.mem;
            e.pods -= u.pods;
            self.retry_all = true;
        }
    }

    pub fn pod_event(&mut self, typ: EventType, v: &Value) {
        let key = (ns_of(v).to_string(), name_of(v).to_string());
        if typ == EventType::Deleted || phase_terminal(v) {
            self.release(&key);
            self.fresh.remove(&key);
            self.waiting.remove(&key);
            return;
        }
        if let Some(node) = v.pointer("/spec/nodeName").and_then(Value::as_str) {
            self.fresh.remove(&key);
            self.waiting.remove(&key);
            if !self.bound.contains_key(&key) {
                let (cpu, mem) = pod_requests(v);
                let u = Usage { cpu, mem, pods: 1 };
                let e = self.used.entry(node.to_string()).or_default();
                e.cpu += u.cpu;
                e.mem += u.mem;
                e.pods += 1;
                self.bound.insert(key, (node.to_string(), u));
            }
            return;
        }
        let ours = v.pointer("/spec/schedulerName").and_then(Value::as_str).unwrap_or("default-scheduler")
            == "default-scheduler";
        if ours && v.pointer("/metadata/deletionTimestamp").is_none() && !self.waiting.contains(&key) {
            self.fresh.insert(key);
        }
    }

    pub fn run(&mut self, sim: &Sim) {
        let mut todo: Vec<PodKey> = std::mem::take(&mut self.fresh).into_iter().collect();
        if std::mem::take(&mut self.retry_all) {
            todo.extend(self.waiting.iter().cloned());
        }
        for key in todo {
            let Some(pod) = sim.c.get_value("", "pods", &key.0, &key.1) else {
                self.waiting.remove(&key);
                continue;
            };
            if pod.pointer("/spec/nodeName").is_some() || pod.pointer("/metadata/deletionTimestamp").is_some() {
                self.waiting.remove(&key);
                continue;
            }
            match self.place(&pod) {
                Ok(node) => {
                    self.waiting.remove(&key);
                    let node2 = node.clone();
                    let r =
                        sim.c.modify(sim.ids.pods, &key.0, &key.1, Some("binding"), "default-scheduler", move |p| {
                            p["spec"]["nodeName"] = json!(node2);
                            set_condition(p, "PodScheduled", "True", None, None);
                        });
                    if log_err("bind pod", r).is_some() {
                        let (cpu, mem) = pod_requests(&pod);
                        let e = self.used.entry(node.clone()).or_default();
                        e.cpu += cpu;
                        e.mem += mem;
                        e.pods += 1;
                        self.bound.insert(key, (node, Usage { cpu, mem, pods: 1 }));
                    }
                }
                Err(msg) => {
                    self.waiting.insert(key.clone());
                    log_err(
                        "report unschedulable",
                        sim.c.modify(sim.ids.pods, &key.0, &key.1, Some("status"), "default-scheduler", |p| {
                            set_condition(p, "PodScheduled", "False", Some("Unschedulable"), Some(&msg));
                        }),
                    );
                }
            }
        }
    }

    /// Picks a node, or explains why none fits.
    fn place(&self, pod: &Value) -> Result<String, String> {
        if self.nodes.is_empty() {
            return Err("no nodes available to schedule pods".into());
        }
        let tols = pod.pointer("/spec/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
        let (cpu, mem) = pod_requests(pod);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut resource_failures = 0;
        let mut best: Option<(usize, i128, &String)> = None;
        for (name, n) in &self.nodes {
            let unsched = Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            };
            if n.unschedulable && !tolerates(&tols, &unsched) {
                *reasons.entry("node(s) were unschedulable".into()).or_default() += 1;
                continue;
            }
            if let Some(t) =
                n.taints.iter().find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerates(&tols, t))
            {
                *reasons.entry(format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value)).or_default() += 1;
                continue;
            }
            if !node_matches(pod, name, &n.labels) {
                *reasons.entry("node(s) didn't match Pod's node affinity/selector".into()).or_default() += 1;
                continue;
            }
            let u = self.used.get(name).cloned().unwrap_or_default();
            let mut fit = Vec::new();
            if u.pods + 1 > n.pods {
                fit.push("Too many pods");
            }
            if cpu > 0 && u.cpu + cpu > n.cpu {
                fit.push("Insufficient cpu");
            }
            if mem > 0 && u.mem + mem > n.mem {
                fit.push("Insufficient memory");
            }
            if !fit.is_empty() {
                resource_failures += 1;
                for f in fit {
                    *reasons.entry(f.into()).or_default() += 1;
                }
                continue;
            }
            let prefer = n.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerates(&tols, t)).count();
            // Least allocated: the fraction used after placing, in thousandths.
            let frac = |used: i128, req: i128, cap: i128| {
                if cap > 0 { (used + req) * 1000 / cap } else { 1000 }
            };
            let load = frac(u.cpu, cpu, n.cpu) + frac(u.mem, mem, n.mem);
            if best.is_none_or(|(bp, bl, _)| (prefer, load) < (bp, bl)) {
                best = Some((prefer, load, name));
            }
        }
        if let Some((_, _, name)) = best {
            return Ok(name.clone());
        }
        let total = self.nodes.len();
        let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        let mut pre = Vec::new();
        if resource_failures > 0 {
            pre.push(format!("{resource_failures} No preemption victims found for incoming pod"));
        }
        if total - resource_failures > 0 {
            pre.push(format!("{} Preemption is not helpful for scheduling", total - resource_failures));
        }
        pre.sort();
        Err(format!(
            "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {}.",
            parts.join(", "),
            pre.join(", ")
        ))
    }
}

/// Sets a pod condition, keeping lastTransitionTime when the status is unchanged.
pub fn set_condition(p: &mut Value, typ: &str, status: &str, reason: Option<&str>, message: Option<&str>) {
    if !p.get("status").is_some_and(Value::is_object) {
        p["status"] = json!({});
    }
    let conds = p["status"].as_object_mut().map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let now = crate::cluster::now_rfc3339();
    let mut c = json!({"type": typ, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match conds.iter_mut().find(|x| x.get("type").and_then(Value::as_str) == Some(typ)) {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status) {
                c["lastTransitionTime"] = existing.get("lastTransitionTime").cloned().unwrap_or(json!(now));
            }
            *existing = c;
        }
        None => conds.push(c),
    }
}
