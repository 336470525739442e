//! The kubelets: start bound pods (ContainerCreating → Running/Ready after a
//! simulated image pull that is faster for images already on the node), fail
//! pulls of "bad" images (ErrImagePull → ImagePullBackOff), enforce
//! activeDeadlineSeconds, finish graceful deletion, keep node status, and
//! evict pods from nodes with untolerated NoExecute taints.

use super::scheduler::{taints_of, tolerates};
use super::{Sim, Timer, is_deleting, log_err, name_of, ns_of, uid_of};
use crate::cluster::{DeleteOpts, ListOpts};
use crate::selector::Selector;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
pub struct Kubelet {
    images: HashMap<String, HashSet<String>>,
    node_ips: HashMap<String, String>,
    started: HashSet<String>,
    terminating: HashSet<String>,
    deadlines: HashSet<String>,
    evicting: HashSet<String>,
    pod_ips: HashMap<String, u32>,
    used_ips: HashSet<u32>,
    next_ip: u32,
    apps: super::apps::Apps,
}

/// `nginx` → `docker.io/library/nginx:latest`, as container runtimes report it.
pub fn normalize_image(image: &str) -> String {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n.to_string(), Some(t.to_string())),
        _ => (image.to_string(), None),
    };
    let digest = name.contains('@');
    let first = name.split('/').next().unwrap_or("");
    let full = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name
    } else {
        format!("docker.io/{name}")
    };
    match (tag, digest) {
        (Some(t), _) => format!("{full}:{t}"),
        (None, true) => full,
        (None, false) => format!("{full}:latest"),
    }
}

fn images_of(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).into_iter().flatten() {
            if let Some(i) = c.get("image").and_then(Value::as_str) {
                out.push(i.to_string());
            }
        }
    }
    out
}

fn hex_id(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    format!("{:016x}{:016x}", h.finish(), h.finish().rotate_left(17))
}

impl Kubelet {
    pub fn node_seen(&mut self, sim: &Sim, node: &Value) {
        let name = name_of(node).to_string();
        let has_status = node.pointer("/status/conditions").is_some();
        if !has_status {
            // A node registered through the API gets a kubelet too.
            let idx = self.node_ips.len() + 100;
            let cap = node
                .pointer("/status/capacity")
                .cloned()
                .unwrap_or(json!({"cpu": "4", "memory": "16Gi", "pods": "110"}));
            log_err(
                "node status",
                sim.c.modify(sim.ids.nodes, "", &name, Some("status"), "kubelet", |n| {
                    n["status"] = super::bootstrap::node_status(cap.clone(), idx);
                }),
            );
        }
        if let Some(ip) = node.pointer("/status/addresses/0/address").and_then(Value::as_str) {
            self.node_ips.insert(name.clone(), ip.to_string());
        }
        // NoExecute taints evict pods that do not tolerate them.
        let no_exec: Vec<_> = taints_of(node).into_iter().filter(|t| t.effect == "NoExecute").collect();
        if no_exec.is_empty() {
            return;
        }
        let pods = pods_on_node(sim, &name);
        for o in pods {
            let pod = o.value();
            let uid = uid_of(&pod).to_string();
            if is_deleting(&pod) || self.evicting.contains(&uid) {
                continue;
            }
            let tols = pod.pointer("/spec/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
            let Some(t) = no_exec.iter().find(|t| !tolerates(&tols, t)).or_else(|| {
                no_exec.iter().find(|t| {
                    tols.iter()
                        .any(|tol| tol.get("tolerationSeconds").is_some() && tolerates(std::slice::from_ref(tol), t))
                })
            }) else {
                continue;
            };
            // Tolerated for a while: evict when tolerationSeconds run out.
            let secs = tols
                .iter()
                .filter(|tol| tolerates(std::slice::from_ref(*tol), t))
                .filter_map(|tol| tol.get("tolerationSeconds").and_then(Value::as_i64))
                .min();
            let tolerated_forever = tolerates(&tols, t) && secs.is_none();
            if tolerated_forever {
                continue;
            }
            self.evicting.insert(uid.clone());
            let timer = Timer::Evict { ns: ns_of(&pod).into(), name: name_of(&pod).into(), uid };
            sim.after(Duration::from_secs(secs.unwrap_or(0).max(0) as u64), timer);
        }
    }

    pub fn node_gone(&mut self, sim: &Sim, node: &Value) {
        let name = name_of(node);
        self.node_ips.remove(name);
        self.images.remove(name);
        // Pod GC: pods bound to a node that no longer exists are deleted.
        let pods = pods_on_node(sim, name);
        for o in pods {
            let v = o.value();
            sim.delete(
                sim.ids.pods,
                ns_of(&v),
                name_of(&v),
                DeleteOpts { grace_period: Some(0), ..Default::default() },
            );
        }
    }

    pub fn pod_gone(&mut self, pod: &Value) {
        let uid = uid_of(pod);
        self.started.remove(uid);
        self.terminating.remove(uid);
        self.deadlines.remove(uid);
        self.evicting.remove(uid);
        self.apps.stop(uid, true);
        if let Some(ip) = self.pod_ips.remove(uid) {
            self.used_ips.remove(&ip);
        }
    }

    fn alloc_ip(&mut self, sim: &Sim, uid: &str) -> String {
        let cidr = sim.c.config.pod_cidr;
        let size = cidr.size().saturating_sub(2).max(1);
        let n = match self.pod_ips.get(uid) {
            Some(n) => *n,
            None => {
                let mut n = 0;
                for _ in 0..size {
                    self.next_ip = self.next_ip % size + 1;
                    if !self.used_ips.contains(&self.next_ip) {
                        n = self.next_ip;
                        break;
                    }
                }
                self.used_ips.insert(n);
                self.pod_ips.insert(uid.to_string(), n);
                n
            }
        };
        cidr.nth(n).to_string()
    }

    pub fn pod_changed(&mut self, sim: &Sim, pod: &Value) {
        let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str).map(str::to_string) else {
            return;
        };
        let uid = uid_of(pod).to_string();
        let (ns, name) = (ns_of(pod).to_string(), name_of(pod).to_string());
        if is_deleting(pod) {
            // SIGTERM: an app kubesim runs stops at once.
            self.apps.stop(&uid, false);
            let grace = pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            if grace > 0 && self.terminating.insert(uid.clone()) {
                let d = sim.c.config.terminate_time.min(Duration::from_secs(grace as u64));
                sim.after(d, Timer::Terminate { ns, name, uid });
            }
            return;
        }
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
        if phase == "Pending"
            && !self.started.contains(&uid)
            && let Some(why) = sysctl_refusal(pod, sim.c.config.nodes.iter().find(|n| n.name == node))
        {
            // As the kubelet's admission (`rejectPod`): the pod fails before it starts.
            self.started.insert(uid.clone());
            log_err(
                "pod rejected",
                sim.c.modify(sim.ids.pods, &ns, &name, Some("status"), "kubelet", |p| {
                    p["status"]["phase"] = json!("Failed");
                    p["status"]["reason"] = json!("SysctlForbidden");
                    p["status"]["message"] = json!(format!("Pod was rejected: {why}"));
                }),
            );
            return;
        }
        if phase == "Pending" && self.started.insert(uid.clone()) {
            let ip = match super::apps::recognised(pod).then(|| self.apps.address(pod)) {
                Some(Ok(ip)) => ip,
                Some(Err(why)) => {
                    tracing::warn!(pod = %name, %why, "no address for a simulated app");
                    self.alloc_ip(sim, &uid)
                }
                None => self.alloc_ip(sim, &uid),
            };
            // Seen before a restart of the simulator: keep the address it had.
            let ip = pod.pointer("/status/podIP").and_then(Value::as_str).map(str::to_string).unwrap_or(ip);
            let host_ip = self.node_ips.get(&node).cloned().unwrap_or_default();
            let now = crate::cluster::now_rfc3339();
            log_err(
                "pod starting",
                sim.c.modify(sim.ids.pods, &ns, &name, Some("status"), "kubelet", |p| {
                    let st = &mut p["status"];
                    st["hostIP"] = json!(host_ip);
                    st["hostIPs"] = json!([{"ip": host_ip}]);
                    st["podIP"] = json!(ip);
                    st["podIPs"] = json!([{"ip": ip}]);
                    st["startTime"] = json!(now);
                    let waiting: Vec<Value> = p["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false,
                                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}})
                        })
                        .collect();
                    p["status"]["containerStatuses"] = json!(waiting);
                    for (t, s) in [("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "False"), ("ContainersReady", "False")] {
                        let reason = (s == "False").then_some("ContainersNotReady");
                        super::scheduler::set_condition(p, t, s, reason, None);
                    }
                }),
            );
            let cached = self.images.get(&node);
            let pull = images_of(pod)
                .iter()
                .map(|i| sim.c.config.images.pull_time(i, cached.is_some_and(|c| c.contains(i))))
                .max()
                .unwrap_or_default();
            sim.after(pull, Timer::PullDone { ns, name, uid });
            return;
        }
        if phase == "Running"
            && super::apps::recognised(pod)
            && let Err(why) = self.apps.start(sim, pod)
        {
            // A pod that was Running before the simulator restarted (its state
            // file): its app starts again at the address it had.
            tracing::warn!(pod = %name, %why, "a simulated app did not start again");
        }
        if phase == "Running"
            && let Some(ads) = pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64)
            && self.deadlines.insert(uid.clone())
        {
            let started = pod
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .unwrap_or_else(jiff::Timestamp::now);
            let due = started + jiff::SignedDuration::from_secs(ads);
            let wait = jiff::Timestamp::now().duration_until(due).as_millis().max(0) as u64;
            sim.after(Duration::from_millis(wait), Timer::Deadline { ns, name, uid });
        }
    }

    fn current(sim: &Sim, ns: &str, name: &str, uid: &str) -> Option<Value> {
        sim.c.get_value("", "pods", ns, name).filter(|p| uid_of(p) == uid)
    }

    pub fn timer(&mut self, sim: &Sim, t: Timer) {
        match t {
            Timer::PullDone { ns, name, uid } => {
                let Some(pod) = Self::current(sim, &ns, &name, &uid).filter(|p| !is_deleting(p)) else {
                    return;
                };
                let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").to_string();
                let bad = images_of(&pod).into_iter().find(|i| sim.c.config.images.bad_image.is_match(i));
                if let Some(img) = bad {
                    let msg = format!(
                        "failed to pull and unpack image \"{}\": failed to resolve reference \"{}\": {}: not found",
                        normalize_image(&img),
                        normalize_image(&img),
                        normalize_image(&img)
                    );
                    set_waiting(sim, &ns, &name, &img, "ErrImagePull", &msg);
                    sim.after(Duration::from_secs(1), Timer::BackOff { ns, name, uid });
                    return;
                }
                self.images.entry(node).or_default().extend(images_of(&pod));
                if let Some((container, why)) = non_root_refusal(&pod, &sim.c.config.images) {
                    set_waiting_container(sim, &ns, &name, &container, "CreateContainerConfigError", &why);
                    return;
                }
                if let Err(why) = self.apps.start(sim, &pod) {
                    let container = pod.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("");
                    set_waiting_container(sim, &ns, &name, container, "CrashLoopBackOff", &why);
                    return;
                }
                let now = crate::cluster::now_rfc3339();
                // Containers with a readiness probe are Ready from its first
                // success, after initialDelaySeconds (probes themselves are not
                // run: they always succeed here).
                let delay =
                    |c: &Value| c.pointer("/readinessProbe/initialDelaySeconds").and_then(Value::as_u64).unwrap_or(0);
                let wait = pod
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(delay)
                    .max()
                    .unwrap_or(0);
                log_err(
                    "pod running",
                    sim.c.modify(sim.ids.pods, &ns, &name, Some("status"), "kubelet", |p| {
                        let containers = p["spec"]["containers"].as_array().cloned().unwrap_or_default();
                        let inits = p["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
                        let status = |c: &Value, running: bool| {
                            let image = c["image"].as_str().unwrap_or("");
                            let cid = format!("kubesim://{}", hex_id(&format!("{uid}/{}", c["name"])));
                            let state = if running {
                                json!({"running": {"startedAt": now}})
                            } else {
                                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now, "containerID": cid}})
                            };
                            let ready = running && delay(c) == 0;
                            json!({"name": c["name"], "image": normalize_image(image), "imageID": format!("{}@sha256:{}", normalize_image(image).rsplit_once(':').map(|x| x.0).unwrap_or(image), hex_id(image).repeat(2)),
                                "containerID": cid, "ready": ready, "started": running, "restartCount": 0, "state": state, "lastState": {}})
                        };
                        p["status"]["phase"] = json!("Running");
                        p["status"]["containerStatuses"] = json!(containers.iter().map(|c| status(c, true)).collect::<Vec<_>>());
                        if !inits.is_empty() {
                            p["status"]["initContainerStatuses"] = json!(inits.iter().map(|c| status(c, false)).collect::<Vec<_>>());
                        }
                        for t in ["PodReadyToStartContainers", "Initialized", "PodScheduled"] {
                            super::scheduler::set_condition(p, t, "True", None, None);
                        }
                        let (s, reason) = if wait == 0 { ("True", None) } else { ("False", Some("ContainersNotReady")) };
                        for t in ["Ready", "ContainersReady"] {
                            super::scheduler::set_condition(p, t, s, reason, None);
                        }
                    }),
                );
                if wait > 0 {
                    sim.after(Duration::from_secs(wait), Timer::ProbeReady { ns, name, uid });
                }
            }
            Timer::ProbeReady { ns, name, uid } => {
                let Some(pod) = Self::current(sim, &ns, &name, &uid).filter(|p| !is_deleting(p)) else {
                    return;
                };
                if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
                    return;
                }
                log_err(
                    "pod ready",
                    sim.c.modify(sim.ids.pods, &ns, &name, Some("status"), "kubelet", |p| {
                        if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                            for c in cs {
                                c["ready"] = json!(true);
                            }
                        }
                        for t in ["Ready", "ContainersReady"] {
                            super::scheduler::set_condition(p, t, "True", None, None);
                        }
                    }),
                );
            }
            Timer::BackOff { ns, name, uid } => {
                let Some(pod) = Self::current(sim, &ns, &name, &uid).filter(|p| !is_deleting(p)) else {
                    return;
                };
                if let Some(img) = images_of(&pod).into_iter().find(|i| sim.c.config.images.bad_image.is_match(i)) {
                    let msg = format!("Back-off pulling image \"{img}\"");
                    set_waiting(sim, &ns, &name, &img, "ImagePullBackOff", &msg);
                }
            }
            Timer::Terminate { ns, name, uid } => {
                if Self::current(sim, &ns, &name, &uid).is_some() {
                    let opts = DeleteOpts { grace_period: Some(0), precondition_uid: Some(uid), ..Default::default() };
                    sim.delete(sim.ids.pods, &ns, &name, opts);
                }
            }
            Timer::Deadline { ns, name, uid } => {
                let Some(pod) = Self::current(sim, &ns, &name, &uid) else {
                    return;
                };
                if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") || is_deleting(&pod) {
                    return;
                }
                let now = crate::cluster::now_rfc3339();
                log_err(
                    "deadline exceeded",
                    sim.c.modify(sim.ids.pods, &ns, &name, Some("status"), "kubelet", |p| {
                        p["status"]["phase"] = json!("Failed");
                        p["status"]["reason"] = json!("DeadlineExceeded");
                        p["status"]["message"] = json!("Pod was active on the node longer than the specified deadline");
                        if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                            for c in cs {
                                c["ready"] = json!(false);
                                c["started"] = json!(false);
                                c["state"] =
                                    json!({"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now}});
                            }
                        }
                        super::scheduler::set_condition(p, "Ready", "False", Some("PodFailed"), None);
                        super::scheduler::set_condition(p, "ContainersReady", "False", Some("PodFailed"), None);
                    }),
                );
            }
            Timer::Evict { ns, name, uid } => {
                if Self::current(sim, &ns, &name, &uid).is_some() {
                    sim.delete(
                        sim.ids.pods,
                        &ns,
                        &name,
                        DeleteOpts { precondition_uid: Some(uid), ..Default::default() },
                    );
                }
            }
            Timer::OrphanCheck { .. } => {}
        }
    }
}

/// The pods bound to a node (a field-selector list, as the kubelet does).
fn pods_on_node(sim: &Sim, node: &str) -> Vec<Arc<crate::store::Obj>> {
    let field = Selector::parse_fields(&format!("spec.nodeName={node}"), &|_| true).unwrap_or_default();
    sim.c.list(sim.ids.pods, None, &ListOpts { field, ..Default::default() }).map(|r| r.items).unwrap_or_default()
}

/// The kubelet's runAsNonRoot check (upstream's `verifyRunAsNonRoot`): the
/// first container it refuses, with the kubelet's message.
fn non_root_refusal(pod: &Value, images: &crate::config::ImagePolicy) -> Option<(String, String)> {
    let pod_sc = &pod["spec"]["securityContext"];
    let who = format!(
        "{}_{}({})",
        pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""),
        pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(""),
        pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")
    );
    for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
        let sc = &c["securityContext"];
        let non_root = sc["runAsNonRoot"].as_bool().or(pod_sc["runAsNonRoot"].as_bool()).unwrap_or(false);
        if !non_root {
            continue;
        }
        let name = c["name"].as_str().unwrap_or("").to_string();
        match sc["runAsUser"].as_i64().or(pod_sc["runAsUser"].as_i64()) {
            Some(0) => {
                return Some((
                    name.clone(),
                    format!("container's runAsUser breaks non-root policy (pod: {who:?}, container: {name})"),
                ));
            }
            Some(_) => continue,
            None => {}
        }
        let image = c["image"].as_str().unwrap_or("");
        let user = images.user_of(image, &normalize_image(image));
        match user.parse::<i64>() {
            Ok(0) => {
                return Some((
                    name.clone(),
                    format!("container has runAsNonRoot and image will run as root (pod: {who:?}, container: {name})"),
                ));
            }
            Ok(_) => {}
            Err(_) => {
                return Some((
                    name.clone(),
                    format!(
                        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is \
                         non-root (pod: {who:?}, container: {name})"
                    ),
                ));
            }
        }
    }
    None
}

fn set_waiting_container(sim: &Sim, ns: &str, name: &str, container: &str, reason: &str, message: &str) {
    log_err(
        "container config error",
        sim.c.modify(sim.ids.pods, ns, name, Some("status"), "kubelet", |p| {
            if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                for c in cs.iter_mut().filter(|c| c["name"].as_str() == Some(container)) {
                    c["state"] = json!({"waiting": {"reason": reason, "message": message}});
                }
            }
        }),
    );
}

fn set_waiting(sim: &Sim, ns: &str, name: &str, image: &str, reason: &str, message: &str) {
    log_err(
        "image pull failure",
        sim.c.modify(sim.ids.pods, ns, name, Some("status"), "kubelet", |p| {
            if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                for c in cs {
                    if c["image"].as_str() == Some(image) {
                        c["state"] = json!({"waiting": {"reason": reason, "message": message}});
                    }
                }
            }
        }),
    );
}

/// Sysctls every kubelet allows (upstream's `SafeSysctlAllowlist`, 1.29),
/// and whether each is in the network namespace.
const SAFE_SYSCTLS: &[(&str, bool)] = &[
    ("kernel.shm_rmid_forced", false),
    ("net.ipv4.ip_local_port_range", true),
    ("net.ipv4.tcp_syncookies", true),
    ("net.ipv4.ping_group_range", true),
    ("net.ipv4.ip_unprivileged_port_start", true),
    ("net.ipv4.ip_local_reserved_ports", true),
    ("net.ipv4.tcp_keepalive_time", true),
    ("net.ipv4.tcp_fin_timeout", true),
    ("net.ipv4.tcp_keepalive_intvl", true),
    ("net.ipv4.tcp_keepalive_probes", true),
];

/// Why the kubelet of `node` refuses the pod's sysctls, as upstream's
/// sysctl admission says it (`forbidden sysctl: "x" not allowlisted`), if
/// it does: a sysctl must be safe or in the node's allowed unsafe ones, and
/// a safe network one is refused to a pod on the host's network.
pub fn sysctl_refusal(pod: &Value, node: Option<&crate::config::NodeSpec>) -> Option<String> {
    let host_net = pod.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false);
    let sysctls = pod.pointer("/spec/securityContext/sysctls").and_then(Value::as_array)?;
    let allowed = node.map(|n| n.allowed_unsafe_sysctls.as_slice()).unwrap_or_default();
    for s in sysctls {
        // Upstream normalises slashes to dots.
        let name = s["name"].as_str().unwrap_or_default().replace('/', ".");
        if let Some((_, net)) = SAFE_SYSCTLS.iter().find(|(n, _)| *n == name) {
            if *net && host_net {
                return Some(format!("forbidden sysctl: {name:?} not allowed with host net enabled"));
            }
            continue;
        }
        let matches = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *p == name,
        };
        if !allowed.iter().any(matches) {
            return Some(format!("forbidden sysctl: {name:?} not allowlisted"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{non_root_refusal, normalize_image};
    use serde_json::json;

    #[test]
    fn the_kubelet_refuses_run_as_non_root_for_root_images_as_upstream_does() {
        let images = crate::config::SimConfig::default().images;
        let pod = |image: &str, pod_sc: serde_json::Value, sc: serde_json::Value| {
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                "spec": {"securityContext": pod_sc, "containers": [{"name": "c", "image": image, "securityContext": sc}]}})
        };
        let refused = |p: serde_json::Value| non_root_refusal(&p, &images).map(|(_, why)| why);
        assert_eq!(
            refused(pod("postgres:16", json!({}), json!({"runAsNonRoot": true}))).as_deref(),
            Some("container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)")
        );
        assert!(
            refused(pod("ghcr.io/actions/actions-runner:2.320.0", json!({"runAsNonRoot": true}), json!({})))
                .unwrap()
                .contains("non-numeric user (runner)")
        );
        assert!(
            refused(pod("postgres:16", json!({"runAsNonRoot": true}), json!({"runAsUser": 0})))
                .unwrap()
                .starts_with("container's runAsUser breaks non-root policy")
        );
        // A user id, an image that runs as one, or no runAsNonRoot: started.
        assert_eq!(refused(pod("postgres:16", json!({"runAsNonRoot": true, "runAsUser": 999}), json!({}))), None);
        assert_eq!(refused(pod("quay.io/jupyter/base-notebook:2024", json!({"runAsNonRoot": true}), json!({}))), None);
        assert_eq!(refused(pod("postgres:16", json!({}), json!({}))), None);
    }

    #[test]
    fn image_names() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize_image("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(normalize_image("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(normalize_image("ghcr.io/x/y:1"), "ghcr.io/x/y:1");
        assert_eq!(normalize_image("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
