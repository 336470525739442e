//! Machines: a KubeadmControlPlane's and a MachineDeployment's replicas
//! become Machines, which boot, join their workload cluster as nodes, and
//! leave it when deleted; MachineHealthChecks remediate unhealthy ones.

use super::status::{ControlPlane, condition, conditions};
use super::{
    BOOTSTRAP, CLUSTER_NAME, CONTROL_PLANE, CORE, FAULT_NODE_READY, INFRA, MACHINE_FINALIZER, Provider, annotation,
    deleting, label, owner_ref, s,
};
use crate::cluster::WriteOpts;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
const CONTROL_PLANE_NAME: &str = "cluster.x-k8s.io/control-plane-name";
const DEPLOYMENT_NAME: &str = "cluster.x-k8s.io/deployment-name";
/// Why kubesim made a node NotReady (so it makes it Ready again).
const FAULT_REASON: &str = "KubesimFault";

/// Where an owner's new machines come from.
struct Owner<'a> {
    obj: &'a Value,
    /// The label that finds its machines, and its value.
    selector: (&'static str, String),
    control_plane: bool,
    version: String,
    /// The infrastructure machine template reference.
    infra: Value,
    /// The kubeadm users (`users` of its kubeadm config).
    users: Value,
}

fn replicas(v: &Value, default: u64) -> usize {
    v.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(default).min(100) as usize
}

fn rand_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char).collect()
}

fn phase_ready(m: &Value) -> bool {
    s(m, "/status/phase") == "Running"
}

impl Provider {
    pub(super) fn control_plane(&mut self, cl: &Value, kcp: &Value) -> ControlPlane {
        let (ns, name) = (s(kcp, "/metadata/namespace"), s(kcp, "/metadata/name"));
        let owner = Owner {
            obj: kcp,
            selector: (CONTROL_PLANE_NAME, name.to_string()),
            control_plane: true,
            version: s(kcp, "/spec/version").to_string(),
            infra: kcp.pointer("/spec/machineTemplate/infrastructureRef").cloned().unwrap_or(Value::Null),
            users: kcp.pointer("/spec/kubeadmConfigSpec/users").cloned().unwrap_or(json!([])),
        };
        let want = replicas(kcp, 1);
        self.roll_out(cl, kcp);
        let machines = self.scale(cl, &owner, want);
        let ready = machines.iter().filter(|m| phase_ready(m)).count();
        let total = machines.len();
        let version = owner.version.clone();
        let generation = kcp.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        let selector = format!("{CLUSTER_NAME}={},{CONTROL_PLANE_LABEL}", s(cl, "/metadata/name"));
        self.edit(CONTROL_PLANE, "kubeadmcontrolplanes", ns, name, true, |o| {
            let old = o["status"].clone();
            let st = &mut o["status"];
            st["replicas"] = json!(total);
            st["updatedReplicas"] = json!(total);
            st["readyReplicas"] = json!(ready);
            st["unavailableReplicas"] = json!(total.saturating_sub(ready));
            st["initialized"] = json!(ready > 0 || old["initialized"] == json!(true));
            st["ready"] = json!(ready > 0);
            st["version"] = json!(version);
            st["selector"] = json!(selector);
            st["observedGeneration"] = generation.clone();
            let available = condition(
                &old,
                "Available",
                ready > 0,
                "WaitingForKubeadmInit",
                "no control-plane machine is ready yet",
            );
            let machines_ready = condition(
                &old,
                "MachinesReady",
                ready == want,
                "Scaling",
                &format!("{ready} of {want} control-plane machines are ready"),
            );
            st["conditions"] = conditions(&old, ready == want && ready > 0, vec![available, machines_ready]);
        });
        ControlPlane { desired: want, ready }
    }

    /// A rollout asked for by `spec.rolloutAfter`: control-plane machines
    /// made before it are replaced, which also brings a downed API server
    /// back (the new control plane has none of the old one's fault).
    fn roll_out(&mut self, cl: &Value, kcp: &Value) {
        let Some(after) = kcp.pointer("/spec/rolloutAfter").and_then(Value::as_str) else { return };
        let Ok(after) = after.parse::<jiff::Timestamp>() else { return };
        if after > jiff::Timestamp::now() {
            return;
        }
        let (ns, name) = (s(kcp, "/metadata/namespace"), s(kcp, "/metadata/name"));
        let old: Vec<Value> = self
            .list(CORE, "machines", Some(ns))
            .into_iter()
            .filter(|m| label(m, CONTROL_PLANE_NAME) == name && !deleting(m))
            .filter(|m| s(m, "/metadata/creationTimestamp").parse::<jiff::Timestamp>().is_ok_and(|t| t < after))
            .collect();
        if old.is_empty() {
            return;
        }
        tracing::info!(cluster = s(cl, "/metadata/name"), machines = old.len(), "simulated control-plane rollout");
        if !annotation(cl, super::FAULT_API_SERVER).is_empty() {
            let cluster = s(cl, "/metadata/name").to_string();
            self.edit(CORE, "clusters", ns, &cluster, false, |o| {
                if let Some(a) = o.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                    a.remove(super::FAULT_API_SERVER);
                }
            });
            if let Some(w) = self.workload(ns, &cluster) {
                w.set_down(false);
            }
        }
        for m in old {
            self.delete(CORE, "machines", ns, s(&m, "/metadata/name"));
        }
    }

    pub(super) fn deployment(&mut self, cl: &Value, md: &Value) {
        let (ns, name) = (s(md, "/metadata/namespace"), s(md, "/metadata/name"));
        let template = md.pointer("/spec/template/spec").cloned().unwrap_or(json!({}));
        let users = self.template_users(ns, &template);
        let owner = Owner {
            obj: md,
            selector: (DEPLOYMENT_NAME, name.to_string()),
            control_plane: false,
            version: s(&template, "/version").to_string(),
            infra: template.get("infrastructureRef").cloned().unwrap_or(Value::Null),
            users,
        };
        let want = replicas(md, 1);
        let machines = self.scale(cl, &owner, want);
        let ready = machines.iter().filter(|m| phase_ready(m)).count();
        let total = machines.len();
        let generation = md.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        let phase = match total.cmp(&want) {
            std::cmp::Ordering::Less => "ScalingUp",
            std::cmp::Ordering::Greater => "ScalingDown",
            std::cmp::Ordering::Equal => "Running",
        };
        let selector = format!("{CLUSTER_NAME}={},{DEPLOYMENT_NAME}={name}", s(cl, "/metadata/name"));
        self.edit(CORE, "machinedeployments", ns, name, true, |o| {
            let old = o["status"].clone();
            let st = &mut o["status"];
            st["replicas"] = json!(total);
            st["updatedReplicas"] = json!(total);
            st["readyReplicas"] = json!(ready);
            st["availableReplicas"] = json!(ready);
            st["unavailableReplicas"] = json!(total.saturating_sub(ready));
            st["phase"] = json!(phase);
            st["selector"] = json!(selector);
            st["observedGeneration"] = generation.clone();
            let available = condition(
                &old,
                "Available",
                ready >= want,
                "WaitingForAvailableMachines",
                &format!("{ready} of {want} machines are ready"),
            );
            st["conditions"] = conditions(&old, ready >= want, vec![available]);
        });
    }

    /// The kubeadm users of a MachineDeployment's bootstrap template.
    fn template_users(&self, ns: &str, template: &Value) -> Value {
        let name = s(template, "/bootstrap/configRef/name");
        self.get(BOOTSTRAP, "kubeadmconfigtemplates", ns, name)
            .and_then(|t| t.pointer("/spec/template/spec/users").cloned())
            .unwrap_or(json!([]))
    }

    /// Makes `want` machines of `owner` exist (NotReady ones go first when
    /// there are too many); the ones that remain.
    fn scale(&mut self, cl: &Value, owner: &Owner, want: usize) -> Vec<Value> {
        let ns = s(owner.obj, "/metadata/namespace");
        let mut machines: Vec<Value> = self
            .list(CORE, "machines", Some(ns))
            .into_iter()
            .filter(|m| label(m, owner.selector.0) == owner.selector.1 && !deleting(m))
            .collect();
        machines.sort_by_key(|m| (phase_ready(m), s(m, "/metadata/creationTimestamp").to_string()));
        while machines.len() > want {
            let m = machines.remove(0);
            self.delete(CORE, "machines", ns, s(&m, "/metadata/name"));
        }
        while machines.len() < want {
            match self.new_machine(cl, owner) {
                Some(m) => machines.push(m),
                None => break,
            }
        }
        machines
    }

    fn new_machine(&mut self, cl: &Value, owner: &Owner) -> Option<Value> {
        let ns = s(owner.obj, "/metadata/namespace");
        let cluster = s(cl, "/metadata/name");
        let name = format!("{}-{}", s(owner.obj, "/metadata/name"), rand_suffix());
        let mut labels = json!({CLUSTER_NAME: cluster, owner.selector.0: owner.selector.1});
        if owner.control_plane {
            labels[CONTROL_PLANE_LABEL] = json!("");
        }
        let infra_kind = s(&owner.infra, "/kind").trim_end_matches("Template").to_string();
        let machine = json!({
            "apiVersion": format!("{CORE}/v1beta1"), "kind": "Machine",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner_ref(owner.obj)],
                "finalizers": [MACHINE_FINALIZER]},
            "spec": {
                "clusterName": cluster,
                "version": owner.version,
                "bootstrap": {"dataSecretName": name},
                "infrastructureRef": {"apiVersion": s(&owner.infra, "/apiVersion"), "kind": infra_kind, "name": name, "namespace": ns},
            }
        });
        let machine = self.create(CORE, "machines", ns, machine)?;
        self.bootstrap_data(&machine, &owner.users);
        if infra_kind == "KubesimMachine"
            && let Some(t) = self.get(INFRA, "kubesimmachinetemplates", ns, s(&owner.infra, "/name"))
        {
            let mut spec = t.pointer("/spec/template/spec").cloned().unwrap_or(json!({}));
            spec["providerID"] = json!(format!("kubesim://{cluster}/{name}"));
            self.create(
                INFRA,
                "kubesimmachines",
                ns,
                json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "KubesimMachine",
                    "metadata": {"name": name, "labels": {CLUSTER_NAME: cluster}, "ownerReferences": [owner_ref(&machine)]},
                    "spec": spec}),
            );
        }
        Some(machine)
    }

    /// The machine's bootstrap data, as the kubeadm bootstrap provider
    /// writes it: cloud-config, here only the users and their SSH keys.
    fn bootstrap_data(&self, machine: &Value, users: &Value) {
        use base64::Engine;
        let mut text = String::from("#cloud-config\nusers:\n");
        for u in users.as_array().into_iter().flatten() {
            text.push_str(&format!("- name: {}\n  ssh_authorized_keys:\n", s(u, "/name")));
            for k in u.get("sshAuthorizedKeys").and_then(Value::as_array).into_iter().flatten() {
                text.push_str(&format!("  - {}\n", k.as_str().unwrap_or("")));
            }
        }
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let name = s(machine, "/metadata/name");
        self.create(
            "",
            "secrets",
            s(machine, "/metadata/namespace"),
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": {CLUSTER_NAME: label(machine, CLUSTER_NAME)},
                    "ownerReferences": [owner_ref(machine)]},
                "type": "cluster.x-k8s.io/secret", "data": {"value": b64(&text), "format": b64("cloud-config")}}),
        );
    }

    /// One machine: booting, joined (its node in the workload cluster), or
    /// deleted (its node leaves, then its finalizer).
    pub(super) fn machine(&mut self, m: &Value) {
        let (ns, name, uid) = (s(m, "/metadata/namespace"), s(m, "/metadata/name"), s(m, "/metadata/uid"));
        let cluster = s(m, "/spec/clusterName");
        let boot = self.c.config.machine_boot;
        if deleting(m) {
            if let Some(w) = self.workload(ns, cluster)
                && let Some((id, _)) = w.cluster().resource("", "nodes")
            {
                let _ = w.cluster().delete(id, "", name, &Default::default());
            }
            self.delete(INFRA, "kubesimmachines", ns, name);
            self.edit(CORE, "machines", ns, name, false, |o| {
                if let Some(f) = o.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                    f.retain(|x| x != MACHINE_FINALIZER);
                }
            });
            return;
        }
        let first = *self.seen.entry(uid.to_string()).or_insert_with(Instant::now);
        if m.pointer("/status/nodeRef").is_some() && self.workload(ns, cluster).is_some_and(|w| w.is_down()) {
            // As upstream: a machine that has a node stays Running when its
            // cluster's API server does not answer; only its node's health is unknown.
            self.edit(CORE, "machines", ns, name, true, |o| {
                let old = o["status"].clone();
                let why = "the workload cluster's API server does not answer";
                let infra = condition(&old, "InfrastructureReady", true, "", "");
                let node_healthy = condition(&old, "NodeHealthy", false, "NodeInspectionFailed", why);
                o["status"]["conditions"] = conditions(&old, false, vec![infra, node_healthy]);
            });
            return;
        }
        let infra_ok = s(m, "/spec/infrastructureRef/kind") == "KubesimMachine";
        let joined = infra_ok
            && first.elapsed() >= boot
            && self.workload(ns, cluster).is_some_and(|w| !w.is_down())
            && self.join(m);
        let node = joined.then(|| self.node_of(m)).flatten();
        if joined && s(m, "/spec/providerID").is_empty() {
            let id = format!("kubesim://{cluster}/{name}");
            self.edit(CORE, "machines", ns, name, false, |o| o["spec"]["providerID"] = json!(id));
        }
        let generation = m.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        self.edit(CORE, "machines", ns, name, true, |o| {
            let old = o["status"].clone();
            let st = &mut o["status"];
            st["bootstrapReady"] = json!(true);
            st["infrastructureReady"] = json!(joined);
            st["observedGeneration"] = generation.clone();
            match &node {
                Some(n) => {
                    st["phase"] = json!("Running");
                    st["nodeRef"] = json!({"apiVersion": "v1", "kind": "Node", "name": s(n, "/metadata/name"), "uid": s(n, "/metadata/uid")});
                    st["addresses"] = n.pointer("/status/addresses").cloned().unwrap_or(json!([]));
                    st["nodeInfo"] = n.pointer("/status/nodeInfo").cloned().unwrap_or(json!({}));
                }
                None => {
                    st["phase"] = json!(if infra_ok { "Provisioning" } else { "Pending" });
                }
            }
            let why = if infra_ok { "the machine is booting" } else { "kubesim boots only KubesimMachine infrastructure" };
            let infra = condition(&old, "InfrastructureReady", joined, "WaitingForInfrastructure", why);
            let node_ok = node.as_ref().is_some_and(node_ready);
            let node_healthy = condition(&old, "NodeHealthy", node_ok, "NodeConditionsFailed", "the node is not Ready");
            st["conditions"] = conditions(&old, joined && node_ok, vec![infra, node_healthy]);
        });
    }

    /// Makes the machine's node exist in its workload cluster (with the
    /// node fault applied): whether it does.
    fn join(&self, m: &Value) -> bool {
        let (ns, name) = (s(m, "/metadata/namespace"), s(m, "/metadata/name"));
        let Some(w) = self.workload(ns, s(m, "/spec/clusterName")) else { return false };
        let wc = w.cluster();
        let Some((id, def)) = wc.resource("", "nodes") else { return false };
        let control_plane = m.pointer("/metadata/labels").and_then(|l| l.get(CONTROL_PLANE_LABEL)).is_some();
        if wc.get_value("", "nodes", "", name).is_none() {
            let mut spec = crate::config::NodeSpec::named(name);
            if control_plane {
                spec.labels.insert("node-role.kubernetes.io/control-plane".into(), String::new());
                spec.taints.push(crate::config::TaintSpec {
                    key: "node-role.kubernetes.io/control-plane".into(),
                    value: String::new(),
                    effect: "NoSchedule".into(),
                });
            }
            let index = wc.count(id) + 1;
            let mut node = crate::sim::bootstrap::node_object(&spec, index);
            node["spec"]["providerID"] = json!(format!("kubesim://{}/{name}", s(m, "/spec/clusterName")));
            let version = s(m, "/spec/version");
            if !version.is_empty() {
                node["status"]["nodeInfo"]["kubeletVersion"] = json!(version);
                node["status"]["nodeInfo"]["kubeProxyVersion"] = json!(version);
            }
            if let Err(e) = wc.create(id, def.storage_version(), "", node, &WriteOpts::manager("kubelet")) {
                tracing::warn!(error = %e, node = name, "simulated machine cannot join");
                return false;
            }
        }
        let want_ready = annotation(m, FAULT_NODE_READY) != "False";
        let _ = wc.modify(id, "", name, Some("status"), "kubelet", |n| {
            let Some(conds) = n.pointer_mut("/status/conditions").and_then(Value::as_array_mut) else { return };
            for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                let is_ready = c["status"] == "True";
                if want_ready && !is_ready && c["reason"] == FAULT_REASON {
                    c["status"] = json!("True");
                    c["reason"] = json!("KubeletReady");
                    c["message"] = json!("kubelet is posting ready status");
                    c["lastTransitionTime"] = json!(crate::cluster::now_rfc3339());
                } else if !want_ready && is_ready {
                    c["status"] = json!("False");
                    c["reason"] = json!(FAULT_REASON);
                    c["message"] = json!(format!("a kubesim fault: {FAULT_NODE_READY}=False on the machine"));
                    c["lastTransitionTime"] = json!(crate::cluster::now_rfc3339());
                }
            }
        });
        true
    }

    fn node_of(&self, m: &Value) -> Option<Value> {
        let w = self.workload(s(m, "/metadata/namespace"), s(m, "/spec/clusterName"))?;
        w.cluster().get_value("", "nodes", "", s(m, "/metadata/name"))
    }

    /// A MachineHealthCheck: machines matching it whose node has had an
    /// unhealthy condition for longer than its timeout are deleted (their
    /// owner makes new ones), unless more are unhealthy than `maxUnhealthy`.
    pub(super) fn health_check(&mut self, mhc: &Value) {
        let (ns, name) = (s(mhc, "/metadata/namespace"), s(mhc, "/metadata/name"));
        let cluster = s(mhc, "/spec/clusterName");
        let want: Vec<(String, String)> = mhc
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        let rules: Vec<(String, String, Duration)> = mhc
            .pointer("/spec/unhealthyConditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| (s(c, "/type").to_string(), s(c, "/status").to_string(), go_duration(s(c, "/timeout"))))
            .collect();
        let machines: Vec<Value> = self
            .list(CORE, "machines", Some(ns))
            .into_iter()
            .filter(|m| s(m, "/spec/clusterName") == cluster && !deleting(m))
            .filter(|m| want.iter().all(|(k, v)| label(m, k) == v))
            .collect();
        let mut unhealthy = Vec::new();
        for m in &machines {
            let uid = s(m, "/metadata/uid").to_string();
            let node = self.node_of(m);
            let hit = node.as_ref().and_then(|n| {
                rules.iter().find(|(t, st, _)| {
                    n.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| cs.iter().any(|c| s(c, "/type") == t && s(c, "/status") == st))
                })
            });
            match hit {
                Some((_, _, timeout)) => {
                    let since = *self.unhealthy.entry(uid).or_insert_with(Instant::now);
                    unhealthy.push((s(m, "/metadata/name").to_string(), since.elapsed() >= *timeout));
                }
                None => {
                    self.unhealthy.remove(&uid);
                }
            }
        }
        let max = max_unhealthy(mhc.pointer("/spec/maxUnhealthy"), machines.len());
        let allowed = unhealthy.len() <= max;
        if allowed {
            for (m, due) in &unhealthy {
                if *due {
                    tracing::info!(machine = %m, health_check = name, "simulated remediation: deleting the machine");
                    self.delete(CORE, "machines", ns, m);
                }
            }
        }
        let (expected, healthy) = (machines.len(), machines.len() - unhealthy.len());
        let targets: Vec<String> = machines.iter().map(|m| s(m, "/metadata/name").to_string()).collect();
        let generation = mhc.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        self.edit(CORE, "machinehealthchecks", ns, name, true, |o| {
            let old = o["status"].clone();
            let st = &mut o["status"];
            st["expectedMachines"] = json!(expected);
            st["currentHealthy"] = json!(healthy);
            st["remediationsAllowed"] = json!(max.saturating_sub(unhealthy.len()));
            st["targets"] = json!(targets);
            st["observedGeneration"] = generation.clone();
            let msg = format!("{} unhealthy machines are more than maxUnhealthy allows ({max})", unhealthy.len());
            let c = condition(&old, "RemediationAllowed", allowed, "TooManyUnhealthy", &msg);
            st["conditions"] = json!([c]);
        });
    }
}

fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// `maxUnhealthy` (a count or a percentage) of `total`; all when unset.
fn max_unhealthy(v: Option<&Value>, total: usize) -> usize {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(p)) if p.ends_with('%') => {
            let pct: usize = p.trim_end_matches('%').parse().unwrap_or(100);
            total.saturating_mul(pct.min(100)) / 100
        }
        Some(Value::String(p)) => p.parse().unwrap_or(total),
        _ => total,
    }
}

/// A Go duration (`300s`, `5m`, `1h30m`, `500ms`); unparsable is 0.
pub fn go_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let Ok(n) = rest[..digits].parse::<f64>() else { return Duration::ZERO };
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let secs = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Duration::ZERO,
        };
        rest = &rest[unit..];
        total = total.saturating_add(Duration::try_from_secs_f64(n * secs).unwrap_or(Duration::ZERO));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_limits() {
        assert_eq!(go_duration("300s"), Duration::from_secs(300));
        assert_eq!(go_duration("1h30m"), Duration::from_secs(5400));
        assert_eq!(go_duration("500ms"), Duration::from_millis(500));
        assert_eq!(go_duration("5 parsecs"), Duration::ZERO);
        assert_eq!(max_unhealthy(Some(&json!("40%")), 5), 2);
        assert_eq!(max_unhealthy(Some(&json!(1)), 5), 1);
        assert_eq!(max_unhealthy(None, 5), 5);
    }
}
