//! Admission: NamespaceLifecycle, LimitRanger, ServiceAccount, DefaultStorageClass,
//! service IP / NodePort allocation and ResourceQuota, with upstream's messages.

use crate::cluster::State;
use crate::error::{ApiError, FieldError};
use crate::registry::ResourceDef;
use quantity::{Quantity, is_bytes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// NamespaceLifecycle for creates of namespaced objects.
pub fn namespace_lifecycle(st: &State, def: &ResourceDef, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(terminating) = st.namespace_terminating(ns) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if terminating {
        let mut e = ApiError::forbidden(
            &def.group,
            &def.plural,
            name,
            format!("unable to create new content in namespace {ns} because it is being terminated"),
        );
        if let Some(d) = e.details.as_mut() {
            d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
        }
        return Err(e);
    }
    Ok(())
}

fn container_lists(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    let mut out = Vec::new();
    if let Some(m) = spec.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if k == "containers" || k == "initContainers" {
                out.extend(v.as_array_mut().into_iter().flatten());
            }
        }
    }
    out.into_iter()
}

/// LimitRanger: defaults container requests/limits from LimitRanges and checks min/max.
pub fn limit_ranger(st: &State, def: &ResourceDef, ns: &str, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    let ranges = st.list_values("", "limitranges", Some(ns));
    if ranges.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for lr in &ranges {
        for limit in lr.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten() {
            let typ = limit.get("type").and_then(Value::as_str).unwrap_or("");
            let get = |k: &str| limit.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
            let (default, default_req, min, max) = (get("default"), get("defaultRequest"), get("min"), get("max"));
            match (def.plural.as_str(), typ) {
                ("pods", "Container") => {
                    let Some(spec) = obj.get_mut("spec") else {
                        continue;
                    };
                    for c in container_lists(spec) {
                        let res = c
                            .as_object_mut()
                            .map(|m| m.entry("resources").or_insert_with(|| json!({})))
                            .and_then(Value::as_object_mut);
                        let Some(res) = res else { continue };
                        for (k, v) in &default {
                            let lim = res.entry("limits").or_insert_with(|| json!({}));
                            if let Some(l) = lim.as_object_mut() {
                                l.entry(k.clone()).or_insert(v.clone());
                            }
                        }
                        // defaultRequest, which itself defaults to the default limit.
                        // (Requests of containers that set limits were already
                        // defaulted to those limits, as upstream's decoding does.)
                        let mut req_defaults = default_req.clone();
                        for (k, v) in &default {
                            req_defaults.entry(k.clone()).or_insert(v.clone());
                        }
                        for (k, v) in req_defaults {
                            let req = res.entry("requests").or_insert_with(|| json!({}));
                            if let Some(r) = req.as_object_mut() {
                                r.entry(k).or_insert(v);
                            }
                        }
                        for (k, m) in &min {
                            let mq = Quantity::from_value(m).unwrap_or_default();
                            match res.get("requests").and_then(|r| r.get(k)).and_then(Quantity::from_value) {
                                Some(rq) if rq < mq => errors.push(format!(
                                    "minimum {k} usage per Container is {}, but request is {}",
                                    mq.render(is_bytes(k)),
                                    rq.render(is_bytes(k))
                                )),
                                None => errors.push(format!(
                                    "minimum {k} usage per Container is {}.  No request is specified",
                                    mq.render(is_bytes(k))
                                )),
                                _ => {}
                            }
                        }
                        for (k, m) in &max {
                            let mq = Quantity::from_value(m).unwrap_or_default();
                            match res.get("limits").and_then(|r| r.get(k)).and_then(Quantity::from_value) {
                                Some(lq) if lq > mq => errors.push(format!(
                                    "maximum {k} usage per Container is {}, but limit is {}",
                                    mq.render(is_bytes(k)),
                                    lq.render(is_bytes(k))
                                )),
                                None => errors.push(format!(
                                    "maximum {k} usage per Container is {}.  No limit is specified",
                                    mq.render(is_bytes(k))
                                )),
                                _ => {}
                            }
                        }
                    }
                }
                ("persistentvolumeclaims", "PersistentVolumeClaim") => {
                    let req = obj.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value);
                    if let (Some(m), Some(r)) = (min.get("storage").and_then(Quantity::from_value), req)
                        && r < m
                    {
                        errors.push(format!(
                            "minimum storage usage per PersistentVolumeClaim is {}, but request is {}",
                            m.render(true),
                            r.render(true)
                        ));
                    }
                    if let (Some(m), Some(r)) = (max.get("storage").and_then(Quantity::from_value), req)
                        && r > m
                    {
                        errors.push(format!(
                            "maximum storage usage per PersistentVolumeClaim is {}, but request is {}",
                            m.render(true),
                            r.render(true)
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(ApiError::forbidden(&def.group, &def.plural, name, &errors[0])),
        _ => Err(ApiError::forbidden(&def.group, &def.plural, name, format!("[{}]", errors.join(", ")))),
    }
}

/// ServiceAccount admission: defaults the pod's account and requires it to exist.
pub fn service_account(st: &State, ns: &str, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    if st.get_value("", "serviceaccounts", ns, &sa).is_none() {
        return Err(ApiError::forbidden(
            "",
            "pods",
            name,
            format!("error looking up service account {ns}/{sa}: serviceaccount {sa:?} not found"),
        ));
    }
    Ok(())
}

/// DefaultStorageClass admission for PVCs.
pub fn default_storage_class(st: &State, obj: &mut Value) {
    if obj.pointer("/spec/storageClassName").is_some() {
        return;
    }
    let default = st.list_values("storage.k8s.io", "storageclasses", None).into_iter().find(|sc| {
        sc.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class").and_then(Value::as_str)
            == Some("true")
    });
    if let Some(sc) = default
        && let (Some(name), Some(spec)) = (sc.pointer("/metadata/name").cloned(), obj.get_mut("spec"))
    {
        spec["storageClassName"] = name;
    }
}

/// Allocates `spec.clusterIP(s)` and NodePorts for a Service (create or update).
pub fn allocate_service(
    st: &State,
    name: &str,
    ns: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let me: crate::store::Key = (ns.into(), name.into());
    let held = &st.store.allocations;
    let seed = crate::allocations::seed(ns, name);
    let typ = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if typ == "ExternalName" {
        return Ok(());
    }
    let spec =
        obj.get_mut("spec").and_then(Value::as_object_mut).ok_or_else(|| ApiError::bad_request("spec is required"))?;
    let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).and_then(Value::as_str).map(str::to_string);
    let requested = spec.get("clusterIP").and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
    let ip = match (requested, old_ip) {
        (Some(r), Some(o)) if r == o => r,
        (None, Some(o)) => o,
        (Some(r), _) if r == "None" => r,
        (Some(r), _) => {
            let parsed: Ipv4Addr = r.parse().map_err(|_| {
                invalid_svc(
                    name,
                    FieldError::invalid_raw(
                        "spec.clusterIPs",
                        format!("[]string{{{r:?}}}"),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ),
                )
            })?;
            if !st.config.service_cidr.contains(parsed) {
                return Err(invalid_svc(
                    name,
                    FieldError::invalid_raw(
                        "spec.clusterIPs",
                        format!("[]string{{{r:?}}}"),
                        format!(
                            "failed to allocate IP {r}: the provided IP ({r}) is not in the valid range. The range of valid IPs is {}",
                            st.config.service_cidr
                        ),
                    ),
                ));
            }
            if held.ip_taken(&r, &me) {
                return Err(invalid_svc(
                    name,
                    FieldError::invalid_raw(
                        "spec.clusterIPs",
                        format!("[]string{{{r:?}}}"),
                        format!("failed to allocate IP {r}: provided IP is already allocated"),
                    ),
                ));
            }
            r
        }
        (None, None) => st
            .config
            .service_cidr
            .pick_free(|ip| held.ip_taken(ip, &me), seed)
            .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?,
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    if ip == "None" {
        spec.remove("ipFamilyPolicy");
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
    }
    let wants_node_ports = typ == "NodePort" || typ == "LoadBalancer";
    let old_ports: Vec<(i64, i64)> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| Some((p.get("port")?.as_i64()?, p.get("nodePort")?.as_i64()?))).collect())
        .unwrap_or_default();
    let mut mine = HashSet::new();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            if !wants_node_ports {
                pm.remove("nodePort");
                continue;
            }
            let port = pm.get("port").and_then(Value::as_i64).unwrap_or(0);
            let np = match pm.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
                Some(n) => {
                    if held.port_taken(n, &me) || mine.contains(&n) {
                        return Err(invalid_svc(
                            name,
                            FieldError::invalid_raw(
                                format!("spec.ports[{i}].nodePort"),
                                n,
                                "provided port is already allocated",
                            ),
                        ));
                    }
                    n
                }
                None => match old_ports.iter().find(|(p, _)| *p == port) {
                    Some((_, n)) => *n,
                    None => {
                        let mut pick = None;
                        let seed = i64::from(seed) + i as i64 * 31;
                        for k in 0..2768 {
                            let cand = 30000 + (seed + k * 997) % 2768;
                            if !held.port_taken(cand, &me) && !mine.contains(&cand) {
                                pick = Some(cand);
                                break;
                            }
                        }
                        pick.ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?
                    }
                },
            };
            mine.insert(np);
            pm.insert("nodePort".into(), json!(np));
        }
    }
    Ok(())
}

fn invalid_svc(name: &str, e: FieldError) -> ApiError {
    ApiError::invalid("", "Service", name, vec![e])
}

/// Usage to charge to quotas on commit.
pub type QuotaCharges = Vec<QuotaCharge>;

/// What an admitted write adds to one quota's usage, with the quota as
/// admission read it (charging re-uses it when the quota has not changed since).
pub struct QuotaCharge {
    pub quota: Arc<Value>,
    pub delta: BTreeMap<String, Quantity>,
}

/// Resource usage an object contributes to quota.
/// Whether [`usage`] reads the object (otherwise it is a count of the kind).
pub fn usage_reads_object(def: &ResourceDef) -> bool {
    def.group.is_empty() && matches!(def.plural.as_str(), "pods" | "services" | "persistentvolumeclaims")
}

pub fn usage(def: &ResourceDef, obj: &Value) -> BTreeMap<String, Quantity> {
    let mut u = BTreeMap::new();
    let one = Quantity(1000);
    let count_name = if def.group.is_empty() {
        format!("count/{}", def.plural)
    } else {
        format!("count/{}.{}", def.plural, def.group)
    };
    u.insert(count_name, one);
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            if phase == "Succeeded" || phase == "Failed" {
                return BTreeMap::new();
            }
            u.insert("pods".into(), one);
            let sum = |kind: &str, r: &str| -> Quantity {
                let mut total = Quantity::ZERO;
                for c in obj.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
                    total = total
                        + c.pointer(&format!("/resources/{kind}/{r}"))
                            .and_then(Quantity::from_value)
                            .unwrap_or_default();
                }
                for c in obj.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten() {
                    let q =
                        c.pointer(&format!("/resources/{kind}/{r}")).and_then(Quantity::from_value).unwrap_or_default();
                    if q > total {
                        total = q;
                    }
                }
                total
            };
            for r in ["cpu", "memory", "ephemeral-storage"] {
                let req = sum("requests", r);
                u.insert(format!("requests.{r}"), req);
                u.insert(r.to_string(), req);
                u.insert(format!("limits.{r}"), sum("limits", r));
            }
        }
        ("", "services") => {
            u.insert("services".into(), one);
            let typ = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array).map(|p| p.len()).unwrap_or(0) as i128;
            if typ == "NodePort" || typ == "LoadBalancer" {
                u.insert("services.nodeports".into(), Quantity(ports * 1000));
            }
            if typ == "LoadBalancer" {
                u.insert("services.loadbalancers".into(), one);
            }
        }
        ("", "persistentvolumeclaims") => {
            u.insert("persistentvolumeclaims".into(), one);
            let q = obj.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value).unwrap_or_default();
            u.insert("requests.storage".into(), q);
            if let Some(sc) = obj.pointer("/spec/storageClassName").and_then(Value::as_str) {
                u.insert(format!("{sc}.storageclass.storage.k8s.io/requests.storage"), q);
                u.insert(format!("{sc}.storageclass.storage.k8s.io/persistentvolumeclaims"), one);
            }
        }
        ("", "configmaps") => {
            u.insert("configmaps".into(), one);
        }
        ("", "secrets") => {
            u.insert("secrets".into(), one);
        }
        ("", "resourcequotas") => {
            u.insert("resourcequotas".into(), one);
        }
        _ => {}
    }
    u
}

const COMPUTE: &[&str] = &["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

fn render_list(items: &[(String, Quantity)]) -> String {
    items.iter().map(|(k, q)| format!("{k}={}", q.render(is_bytes(k)))).collect::<Vec<_>>().join(",")
}

/// ResourceQuota admission. Returns the quotas whose `status.used` must be
/// charged with the object's usage (the caller writes them with the object).
pub fn quota(
    st: &State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<QuotaCharges, ApiError> {
    if !def.namespaced {
        return Ok(vec![]);
    }
    let quotas = st.list_shared("", "resourcequotas", Some(ns));
    if quotas.is_empty() {
        return Ok(vec![]);
    }
    let new_u = usage(def, obj);
    let old_u = old.map(|o| usage(def, o)).unwrap_or_default();
    let mut charges = Vec::new();
    for q in quotas {
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let hard = q.pointer("/spec/hard").and_then(Value::as_object).cloned().unwrap_or_default();
        // Pods must state requests/limits for every constrained compute resource.
        if def.plural == "pods" && def.group.is_empty() && old.is_none() {
            let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in hard.keys().filter(|k| COMPUTE.contains(&k.as_str())) {
                let (kind, res) = match r.split_once('.') {
                    Some((k, res)) => (k, res),
                    None => ("requests", r.as_str()),
                };
                for c in obj.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
                    if c.pointer(&format!("/resources/{kind}/{res}")).is_none() {
                        missing
                            .entry(r.clone())
                            .or_default()
                            .push(c.get("name").and_then(Value::as_str).unwrap_or("").to_string());
                    }
                }
            }
            if !missing.is_empty() {
                let parts: Vec<String> = missing.iter().map(|(r, cs)| format!("{r} for: {}", cs.join(","))).collect();
                return Err(ApiError::forbidden(
                    &def.group,
                    &def.plural,
                    name,
                    format!("failed quota: {qname}: must specify {}", parts.join("; ")),
                ));
            }
        }
        let used = q.pointer("/status/used").and_then(Value::as_object);
        let mut delta = BTreeMap::new();
        let (mut req, mut usd, mut lim) = (Vec::new(), Vec::new(), Vec::new());
        for (r, h) in &hard {
            let d = new_u.get(r).copied().unwrap_or_default() - old_u.get(r).copied().unwrap_or_default();
            if d.0 <= 0 {
                continue;
            }
            let Some(used_now) = used.and_then(|u| u.get(r)).and_then(Quantity::from_value) else {
                return Err(ApiError::forbidden(
                    &def.group,
                    &def.plural,
                    name,
                    format!("status unknown for quota: {qname}, resource: {r}"),
                ));
            };
            let hq = Quantity::from_value(h).unwrap_or_default();
            if used_now + d > hq {
                req.push((r.clone(), d));
                usd.push((r.clone(), used_now));
                lim.push((r.clone(), hq));
            }
            delta.insert(r.clone(), d);
        }
        if !req.is_empty() {
            return Err(ApiError::forbidden(
                &def.group,
                &def.plural,
                name,
                format!(
                    "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    render_list(&req),
                    render_list(&usd),
                    render_list(&lim)
                ),
            ));
        }
        if !delta.is_empty() {
            charges.push(QuotaCharge { quota: q, delta });
        }
    }
    Ok(charges)
}
