//! Validation with upstream's field paths and messages (k8s.io/apimachinery
//! validation and pkg/apis/*/validation), for the fields clients rely on.

mod data;
mod event;
pub mod names;
mod pod_update;
pub mod webhooks;

use crate::error::FieldError;
use crate::registry::ResourceDef;
use quantity::Quantity;
use serde_json::Value;

pub use names::{
    dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors, label_value_errors, port_name_errors,
    qualified_name_errors,
};

fn push_all(out: &mut Vec<FieldError>, field: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        out.push(FieldError::invalid(field, value, m));
    }
}

/// Validates the name according to the type's naming rule.
pub fn name_errors(def: &ResourceDef, name: &str) -> Vec<String> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => dns1123_label_errors(name),
        ("", "services") => dns1035_label_errors(name),
        ("rbac.authorization.k8s.io", _) => {
            if name.contains('/') || name.contains('%') || name == "." || name == ".." {
                vec!["may not contain '/' or '%'".to_string()]
            } else {
                vec![]
            }
        }
        _ => dns1123_subdomain_errors(name),
    }
}

/// Metadata checks common to every kind.
pub fn validate_meta(def: &ResourceDef, obj: &Value, out: &mut Vec<FieldError>) {
    let meta = obj.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        out.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        push_all(out, "metadata.name", name, name_errors(def, name));
    }
    if let Some(labels) = meta.and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(m) => {
                for (k, v) in m {
                    push_all(out, "metadata.labels", k, qualified_name_errors(k));
                    match v.as_str() {
                        Some(v) => push_all(out, "metadata.labels", v, label_value_errors(v)),
                        None => out.push(FieldError::invalid_raw("metadata.labels", v, "label values must be strings")),
                    }
                }
            }
            None if labels.is_null() => {}
            None => out.push(FieldError::invalid_raw("metadata.labels", labels, "must be a map of string to string")),
        }
    }
    if let Some(ann) = meta.and_then(|m| m.get("annotations")).and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            push_all(out, "metadata.annotations", k, qualified_name_errors(&k.to_lowercase()));
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
        }
        if total > 256 * 1024 {
            out.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    if let Some(refs) = meta.and_then(|m| m.get("ownerReferences")).and_then(Value::as_array) {
        for (i, r) in refs.iter().enumerate() {
            for f in ["apiVersion", "kind", "name", "uid"] {
                if r.get(f).and_then(Value::as_str).unwrap_or("").is_empty() {
                    out.push(FieldError::invalid(
                        format!("metadata.ownerReferences[{i}].{f}"),
                        "",
                        format!("{f} must not be empty"),
                    ));
                }
            }
        }
        let controllers = refs.iter().filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).count();
        if controllers > 1 {
            out.push(FieldError::invalid_raw(
                "metadata.ownerReferences",
                "[...]",
                "Only one reference can have Controller set to true",
            ));
        }
    }
    if let Some(fins) = meta.and_then(|m| m.get("finalizers")).and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let s = f.as_str().unwrap_or("");
            push_all(out, &format!("metadata.finalizers[{i}]"), s, qualified_name_errors(s));
        }
    }
}

fn quantity_at(v: &Value, field: &str, out: &mut Vec<FieldError>) -> Option<Quantity> {
    match Quantity::from_value(v) {
        Some(q) if q.0 < 0 => {
            out.push(FieldError::invalid(field, v.as_str().unwrap_or(""), "must be greater than or equal to 0"));
            None
        }
        Some(q) => Some(q),
        None => {
            out.push(FieldError::invalid(
                field,
                v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ));
            None
        }
    }
}

fn validate_resource_list(v: Option<&Value>, field: &str, out: &mut Vec<FieldError>) -> Vec<(String, Quantity)> {
    let mut res = Vec::new();
    if let Some(m) = v.and_then(Value::as_object) {
        for (k, q) in m {
            if let Some(q) = quantity_at(q, &format!("{field}[{k}]"), out) {
                res.push((k.clone(), q));
            }
        }
    }
    res
}

fn validate_ports(ports: Option<&Value>, base: &str, out: &mut Vec<FieldError>) {
    let Some(ports) = ports.and_then(Value::as_array) else {
        return;
    };
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("{base}[{i}]");
        match p.get("containerPort").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => out.push(FieldError::invalid_raw(
                format!("{f}.containerPort"),
                n,
                "must be between 1 and 65535, inclusive",
            )),
            None => out.push(FieldError::required(format!("{f}.containerPort"), "")),
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            out.push(FieldError::not_supported(format!("{f}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
        }
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            push_all(out, &format!("{f}.name"), name, port_name_errors(name));
            if names.contains(&name) {
                out.push(FieldError::duplicate(format!("{f}.name"), name));
            }
            names.push(name);
        }
    }
}

fn validate_containers(spec: &Value, base: &str, out: &mut Vec<FieldError>) {
    let mut names: Vec<String> = Vec::new();
    for list in ["initContainers", "containers"] {
        let cs = spec.get(list).and_then(Value::as_array);
        if list == "containers" && cs.is_none_or(|c| c.is_empty()) {
            out.push(FieldError::required(format!("{base}.containers"), ""));
            continue;
        }
        for (i, c) in cs.into_iter().flatten().enumerate() {
            let f = format!("{base}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => out.push(FieldError::required(format!("{f}.name"), "")),
                Some(n) => {
                    push_all(out, &format!("{f}.name"), n, dns1123_label_errors(n));
                    if names.iter().any(|x| x == n) {
                        out.push(FieldError::duplicate(format!("{f}.name"), n));
                    }
                    names.push(n.to_string());
                }
            }
            if c.get("image").and_then(Value::as_str).unwrap_or("").trim().is_empty() {
                out.push(FieldError::required(format!("{f}.image"), ""));
            }
            validate_ports(c.get("ports"), &format!("{f}.ports"), out);
            let limits = validate_resource_list(c.pointer("/resources/limits"), &format!("{f}.resources.limits"), out);
            let requests =
                validate_resource_list(c.pointer("/resources/requests"), &format!("{f}.resources.requests"), out);
            for (k, rq) in &requests {
                if let Some((_, lq)) = limits.iter().find(|(lk, _)| lk == k)
                    && rq > lq
                {
                    out.push(FieldError::invalid(
                        format!("{f}.resources.requests"),
                        c.pointer(&format!("/resources/requests/{k}")).and_then(Value::as_str).unwrap_or(""),
                        format!(
                            "must be less than or equal to {k} limit of {}",
                            c.pointer(&format!("/resources/limits/{k}")).and_then(Value::as_str).unwrap_or("")
                        ),
                    ));
                }
            }
        }
    }
}

fn validate_pod_spec(spec: Option<&Value>, base: &str, out: &mut Vec<FieldError>) {
    let Some(spec) = spec else {
        out.push(FieldError::required(base, ""));
        return;
    };
    validate_containers(spec, base, out);
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        out.push(FieldError::not_supported(format!("{base}.restartPolicy"), rp, &["Always", "OnFailure", "Never"]));
    }
    if let Some(tols) = spec.get("tolerations").and_then(Value::as_array) {
        for (i, t) in tols.iter().enumerate() {
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            if !matches!(op, "Equal" | "Exists") {
                out.push(FieldError::not_supported(
                    format!("{base}.tolerations[{i}].operator"),
                    op,
                    &["Equal", "Exists"],
                ));
            }
            if let Some(e) = t.get("effect").and_then(Value::as_str)
                && !e.is_empty()
                && !matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            {
                out.push(FieldError::not_supported(
                    format!("{base}.tolerations[{i}].effect"),
                    e,
                    &["NoExecute", "NoSchedule", "PreferNoSchedule"],
                ));
            }
        }
    }
    let mut vol_names = Vec::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let n = v.get("name").and_then(Value::as_str).unwrap_or("");
        if n.is_empty() {
            out.push(FieldError::required(format!("{base}.volumes[{i}].name"), ""));
        } else if vol_names.contains(&n) {
            out.push(FieldError::duplicate(format!("{base}.volumes[{i}].name"), n));
        }
        vol_names.push(n);
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            for (j, m) in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let n = m.get("name").and_then(Value::as_str).unwrap_or("");
                if !vol_names.contains(&n) {
                    out.push(FieldError {
                        kind: crate::error::FieldErrorKind::NotSupported,
                        field: format!("{base}.{list}[{i}].volumeMounts[{j}].name"),
                        value: Some(format!("{n:?}")),
                        detail: String::new(),
                    });
                }
            }
        }
    }
}

fn validate_selector_matches_template(obj: &Value, out: &mut Vec<FieldError>) {
    let Some(sel) = obj.pointer("/spec/selector") else {
        out.push(FieldError::required("spec.selector", ""));
        return;
    };
    let empty = sel.get("matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
        && sel.get("matchExpressions").and_then(Value::as_array).is_none_or(|m| m.is_empty());
    if empty {
        out.push(FieldError::invalid_raw("spec.selector", "{}", "empty selector is invalid for deployment"));
        return;
    }
    match crate::selector::Selector::from_label_selector(sel) {
        Ok(s) => {
            let labels = obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
            if !s.matches_map(labels) {
                out.push(FieldError::invalid_raw(
                    "spec.template.metadata.labels",
                    serde_json::to_string(&labels).unwrap_or_default(),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        Err(e) => out.push(FieldError::invalid_raw("spec.selector", "", e)),
    }
}

fn validate_service(obj: &Value, out: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let typ = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if !matches!(typ, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        out.push(FieldError::not_supported(
            "spec.type",
            typ,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec.get("ports").and_then(Value::as_array);
    if ports.is_none_or(|p| p.is_empty()) && !headless && typ != "ExternalName" {
        out.push(FieldError::required("spec.ports", ""));
    }
    if headless && typ != "ClusterIP" {
        out.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {typ} services"),
        ));
    }
    let mut names = Vec::new();
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let f = format!("spec.ports[{i}]");
        match p.get("port").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => {
                out.push(FieldError::invalid_raw(format!("{f}.port"), n, "must be between 1 and 65535, inclusive"))
            }
            None => out.push(FieldError::required(format!("{f}.port"), "")),
        }
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.is_some_and(|ps| ps.len() > 1) && name.is_empty() {
            out.push(FieldError::required(format!("{f}.name"), ""));
        }
        if !name.is_empty() {
            push_all(out, &format!("{f}.name"), name, dns1123_label_errors(name));
            if names.contains(&name) {
                out.push(FieldError::duplicate(format!("{f}.name"), name));
            }
            names.push(name);
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str)
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            out.push(FieldError::not_supported(format!("{f}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            if typ != "NodePort" && typ != "LoadBalancer" && np != 0 {
                out.push(FieldError::forbidden(format!("{f}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
            } else if !(30000..=32767).contains(&np) && np != 0 {
                out.push(FieldError::invalid_raw(
                    format!("{f}.nodePort"),
                    np,
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
        }
    }
}

fn validate_pvc(obj: &Value, out: &mut Vec<FieldError>) {
    let modes = obj.pointer("/spec/accessModes").and_then(Value::as_array);
    if modes.is_none_or(|m| m.is_empty()) {
        out.push(FieldError::required("spec.accessModes", "at least 1 access mode is required"));
    }
    for (i, m) in modes.into_iter().flatten().enumerate() {
        let m = m.as_str().unwrap_or("");
        if !matches!(m, "ReadWriteOnce" | "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOncePod") {
            out.push(FieldError::not_supported(
                format!("spec.accessModes[{i}]"),
                m,
                &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"],
            ));
        }
    }
    match obj.pointer("/spec/resources/requests/storage") {
        None => out.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => {
            if let Some(q) = quantity_at(q, "spec.resources[storage]", out)
                && q.0 <= 0
            {
                out.push(FieldError::invalid("spec.resources[storage]", q.render(true), "must be greater than zero"));
            }
        }
    }
}

fn validate_crd(obj: &Value, out: &mut Vec<FieldError>) {
    let group = obj.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = obj.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if group.is_empty() {
        out.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        out.push(FieldError::invalid("spec.group", group, "should be a domain with at least one dot"));
    }
    if plural.is_empty() {
        out.push(FieldError::required("spec.names.plural", ""));
    }
    if obj.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or("").is_empty() {
        out.push(FieldError::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        out.push(FieldError::invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
    }
    match obj.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Namespaced") | Some("Cluster") => {}
        Some(s) => out.push(FieldError::not_supported("spec.scope", s, &["Cluster", "Namespaced"])),
        None => out.push(FieldError::required("spec.scope", "")),
    }
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    if versions.is_none_or(|v| v.is_empty()) {
        out.push(FieldError::required("spec.versions", "must have exactly one version marked as storage version"));
    } else {
        let storage =
            versions.into_iter().flatten().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
        if storage != 1 {
            out.push(FieldError::invalid_raw(
                "spec.versions",
                "[...]",
                "must have exactly one version marked as storage version",
            ));
        }
    }
}

fn validate_quota_like(obj: &Value, out: &mut Vec<FieldError>) {
    validate_resource_list(obj.pointer("/spec/hard"), "spec.hard", out);
    for (i, l) in obj.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for part in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            validate_resource_list(l.get(part), &format!("spec.limits[{i}].{part}"), out);
        }
        let t = l.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(t, "Pod" | "Container" | "PersistentVolumeClaim") {
            out.push(FieldError::not_supported(
                format!("spec.limits[{i}].type"),
                t,
                &["Container", "PersistentVolumeClaim", "Pod"],
            ));
        }
    }
}

fn validate_node(obj: &Value, out: &mut Vec<FieldError>) {
    for (i, t) in obj.pointer("/spec/taints").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() {
            out.push(FieldError::required(format!("spec.taints[{i}].key"), ""));
        } else {
            push_all(out, &format!("spec.taints[{i}].key"), key, qualified_name_errors(key));
        }
        let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
        if !matches!(e, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            out.push(FieldError::not_supported(
                format!("spec.taints[{i}].effect"),
                e,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// Kind-specific validation of a whole object (create or update).
/// An `events.k8s.io/v1` Event's own checks (in that API's field names),
/// before it is stored in the core form.
pub fn events_v1(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    event::validate(obj, old, &mut out);
    out
}

pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate_meta(def, obj, &mut out);
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => validate_pod_spec(obj.get("spec"), "spec", &mut out),
        ("", "services") => validate_service(obj, &mut out),
        ("", "persistentvolumeclaims") => validate_pvc(obj, &mut out),
        ("", "resourcequotas") | ("", "limitranges") => validate_quota_like(obj, &mut out),
        ("", "nodes") => validate_node(obj, &mut out),
        ("apps", "deployments") | ("apps", "replicasets") | ("apps", "daemonsets") => {
            validate_selector_matches_template(obj, &mut out);
            validate_pod_spec(obj.pointer("/spec/template/spec"), "spec.template.spec", &mut out);
            if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
                && r < 0
            {
                out.push(FieldError::invalid_raw("spec.replicas", r, "must be greater than or equal to 0"));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => validate_crd(obj, &mut out),
        ("", "events") if old.is_none() => event::namespace(obj, "involvedObject", &mut out),
        ("", "configmaps") => data::config_map(obj, &mut out),
        ("", "secrets") => data::secret(obj, &mut out),
        _ => {}
    }
    if let Some(old) = old {
        validate_update(def, obj, old, &mut out);
    }
    out
}

fn validate_update(def: &ResourceDef, obj: &Value, old: &Value, out: &mut Vec<FieldError>) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => pod_update::validate(obj, old, out),
        ("", "services") => {
            let a = obj.pointer("/spec/clusterIP").and_then(Value::as_str);
            let b = old.pointer("/spec/clusterIP").and_then(Value::as_str);
            if b.is_some() && a.is_some() && a != b {
                out.push(FieldError::invalid("spec.clusterIPs[0]", a.unwrap_or(""), "may not change once set"));
            }
        }
        ("", "persistentvolumeclaims") => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(r) = s.pointer_mut("/resources/requests").and_then(Value::as_object_mut) {
                    r.remove("storage");
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    // The binder fills volumeName once.
                    if old.pointer("/spec/volumeName").is_none() {
                        m.remove("volumeName");
                    }
                }
                s
            };
            if strip(obj) != strip(old) {
                out.push(FieldError::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
            let new_q = obj.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value);
            let old_q = old.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value);
            let cap = old.pointer("/status/capacity/storage").and_then(Quantity::from_value);
            if let (Some(n), Some(o)) = (new_q, old_q)
                && n != o
            {
                if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
                    out.push(FieldError::forbidden(
                        "spec.resources.requests.storage",
                        "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
                    ));
                } else if n < cap.unwrap_or(o) {
                    out.push(FieldError::forbidden(
                        "spec.resources.requests.storage",
                        "field can not be less than status.capacity",
                    ));
                }
            }
        }
        ("apps", "deployments") | ("apps", "replicasets") | ("apps", "daemonsets")
            if obj.pointer("/spec/selector") != old.pointer("/spec/selector") =>
        {
            out.push(FieldError::invalid_raw(
                "spec.selector",
                serde_json::to_string(&obj.pointer("/spec/selector")).unwrap_or_default(),
                "field is immutable",
            ));
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            for f in ["group", "scope"] {
                if obj.pointer(&format!("/spec/{f}")) != old.pointer(&format!("/spec/{f}")) {
                    out.push(FieldError::invalid(format!("spec.{f}"), "", "field is immutable"));
                }
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
            if obj.get("roleRef") != old.get("roleRef") =>
        {
            // Upstream prints the new RoleRef as a Go struct (%#v).
            let r = |k: &str| obj.pointer(&format!("/roleRef/{k}")).and_then(Value::as_str).unwrap_or("").to_string();
            let value =
                format!("rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}", r("apiGroup"), r("kind"), r("name"));
            out.push(FieldError::invalid_raw("roleRef", value, "cannot change roleRef"));
        }
        ("", "configmaps") | ("", "secrets") if old.get("immutable").and_then(Value::as_bool) == Some(true) => {
            for f in ["data", "binaryData", "stringData"] {
                if obj.get(f) != old.get(f) {
                    out.push(FieldError::forbidden(f, "field is immutable when `immutable` is set"));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rules() {
        assert!(dns1123_label_errors("team-a").is_empty());
        assert!(!dns1123_label_errors("Team_A").is_empty());
        assert!(!dns1123_label_errors(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain_errors("a.b-c.d").is_empty());
        assert!(!dns1123_subdomain_errors("a..b").is_empty());
        assert!(!dns1035_label_errors("1abc").is_empty());
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("paddock.dev/tenant").is_empty());
        assert!(qualified_name_errors("app").is_empty());
        assert!(!qualified_name_errors("/x").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
        assert!(label_value_errors("").is_empty());
        assert!(!label_value_errors("-x").is_empty());
    }
}
