//! Defaulting, as upstream's SetDefaults_* functions and the defaulting
//! admission plugins (DefaultTolerationSeconds, DefaultStorageClass) do.

use serde_json::{Map, Value, json};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    crate::jsonobj::child_object(v, key)
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.entry(k.to_string()).or_insert(v);
}

fn default_image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        _ => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let image = m.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    set_default(m, "imagePullPolicy", json!(default_image_pull_policy(&image)));
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    set_default(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
    // Limits without requests: requests default to the limits.
    if let Some(res) = m.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
    {
        let req = res.entry("requests").or_insert_with(|| json!({}));
        if let Some(req) = req.as_object_mut() {
            for (k, v) in limits {
                req.entry(k).or_insert(v);
            }
        }
    }
}

pub fn pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "securityContext", json!({}));
    set_default(m, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
}

fn pod(obj: &mut Value) {
    pod_spec(obj.get_mut("spec").unwrap_or(&mut Value::Null));
    let spec = obj_mut(obj, "spec");
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // DefaultTolerationSeconds admission.
    let tols = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(tols) = tols.as_array_mut() {
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let has = tols.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    || (t.get("operator").and_then(Value::as_str) == Some("Exists") && t.get("key").is_none())
            });
            if !has {
                tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
    let status = obj_mut(obj, "status");
    set_default(status, "phase", json!("Pending"));
    set_default(status, "qosClass", json!(qos));
}

/// Upstream's QoS classification.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec.get("containers").and_then(Value::as_array).into_iter().flatten() {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r));
            let lm = lim.and_then(|m| m.get(r));
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            match (rq, lm) {
                (Some(a), Some(b)) if quantity::Quantity::from_value(a) == quantity::Quantity::from_value(b) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn service(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    let typ = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if typ == "NodePort" || typ == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if typ != "ExternalName" {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
    }
    obj_mut(obj, "status").entry("loadBalancer").or_insert_with(|| json!({}));
}

fn workload(obj: &mut Value, kind: &str) {
    let spec = obj_mut(obj, "spec");
    match kind {
        "Deployment" => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
        }
        "ReplicaSet" => set_default(spec, "replicas", json!(1)),
        "DaemonSet" => {
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        _ => {}
    }
    if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
        pod_spec(ps);
    }
}

fn network_policy(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    if !spec.contains_key("policyTypes") {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for dir in ["ingress", "egress"] {
        for rule in spec.get_mut(dir).and_then(Value::as_array_mut).into_iter().flatten() {
            for p in rule.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

fn secret(obj: &mut Value) {
    use base64::Engine;
    let Some(m) = obj.as_object_mut() else { return };
    set_default(m, "type", json!("Opaque"));
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if let Some(data) = data.as_object_mut() {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or("");
                data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
            }
        }
    }
}

/// Applies the kind's defaults to an object about to be stored.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => pod(obj),
        ("", "Service") => service(obj),
        ("", "Secret") => secret(obj),
        ("", "PersistentVolumeClaim") => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
            let st = obj_mut(obj, "status");
            set_default(st, "phase", json!("Pending"));
        }
        ("", "PersistentVolume") => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set_default(spec, "volumeMode", json!("Filesystem"));
            let st = obj_mut(obj, "status");
            set_default(st, "phase", json!("Pending"));
        }
        ("", "ServiceAccount") | ("", "ConfigMap") | ("", "Endpoints") | ("", "Node") => {}
        ("apps", k) => workload(obj, k),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("policy", "PodDisruptionBudget") => {}
        _ => {}
    }
}
