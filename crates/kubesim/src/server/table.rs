//! `meta.k8s.io/v1` Table responses (what `kubectl get` asks for): upstream's
//! columns for the common built-ins, CRD printer columns, Name/Age otherwise.

use super::Query;
use crate::cluster::ListResult;
use crate::registry::{PrinterColumn, ResourceDef};
use crate::store::Obj;
use serde_json::{Value, json};

/// Upstream's duration.HumanDuration (future times are `<invalid>`, as there).
pub fn human_age(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", s % 60) }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(v: &Value) -> String {
    let Some(ts) = v.pointer("/metadata/creationTimestamp").and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_age(t.duration_until(jiff::Timestamp::now()).as_secs()),
        Err(_) => "<invalid>".into(),
    }
}

/// Upstream's translate(Micro)TimestampSince: the age of a time, `<unknown>` without one.
fn since(v: &Value, pointer: &str) -> Option<String> {
    let ts = v.pointer(pointer).and_then(Value::as_str)?;
    Some(match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_age(t.duration_until(jiff::Timestamp::now()).as_secs()),
        Err(_) => "<invalid>".into(),
    })
}

/// Upstream's printEvent, for both Event APIs (the stored core form): every
/// cell, the wide ones at priority 1.
fn event_row(v: &Value) -> (Vec<Value>, Vec<Value>) {
    let first = since(v, "/firstTimestamp").or_else(|| since(v, "/eventTime")).unwrap_or_else(|| "<unknown>".into());
    let mut last = since(v, "/lastTimestamp").unwrap_or_else(|| first.clone());
    let mut count = v.get("count").and_then(Value::as_i64).unwrap_or(0);
    if v.get("series").is_some_and(Value::is_object) {
        last = since(v, "/series/lastObservedTime").unwrap_or_else(|| "<unknown>".into());
        count = v.pointer("/series/count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(v, "/involvedObject/kind").to_lowercase();
    let target = match s(v, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let first_of = |a: &str, b: &str| if a.is_empty() { b.to_string() } else { a.to_string() };
    let component = first_of(s(v, "/source/component"), s(v, "/reportingComponent"));
    let instance = first_of(s(v, "/source/host"), s(v, "/reportingInstance"));
    let source = match (component.is_empty(), instance.is_empty()) {
        (true, _) => String::new(),
        (false, true) => component,
        (false, false) => format!("{component}, {instance}"),
    };
    (
        vec![
            col("Last Seen", "string", "", 0),
            col("Type", "string", "", 0),
            col("Reason", "string", "", 0),
            col("Object", "string", "", 0),
            col("Subobject", "string", "", 1),
            col("Source", "string", "", 1),
            col("Message", "string", "", 0),
            col("First Seen", "string", "", 1),
            col("Count", "string", "", 1),
            col("Name", "string", "name", 1),
        ],
        vec![
            json!(last),
            json!(s(v, "/type")),
            json!(s(v, "/reason")),
            json!(target),
            json!(s(v, "/involvedObject/fieldPath")),
            json!(source),
            json!(s(v, "/message").trim()),
            json!(first),
            json!(count),
            json!(s(v, "/metadata/name")),
        ],
    )
}

fn col(name: &str, typ: &str, format: &str, priority: i64) -> Value {
    json!({"name": name, "type": typ, "format": format, "description": "", "priority": priority})
}

/// Evaluates the simple JSONPath forms printer columns use:
/// `.a.b`, `.a[0].b`, `.a[*].b`, `.a[?(@.type=="Ready")].status`.
pub fn json_path(v: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![v.clone()];
    let p = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            cur = cur.iter().filter_map(|x| x.get(field).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return vec![];
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                cur = cur.iter().flat_map(|x| x.as_array().cloned().unwrap_or_default()).collect();
            } else if let Ok(i) = inner.parse::<usize>() {
                cur = cur.iter().filter_map(|x| x.get(i).cloned()).collect();
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = f.split_once("==").unwrap_or((f, ""));
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur
                    .iter()
                    .flat_map(|x| x.as_array().cloned().unwrap_or_default())
                    .filter(|it| it.get(field.trim()).and_then(Value::as_str) == Some(want))
                    .collect();
            } else {
                return vec![];
            }
        } else {
            return vec![];
        }
    }
    cur
}

fn cell_for(c: &PrinterColumn, v: &Value) -> Value {
    let vals = json_path(v, &c.json_path);
    let Some(first) = vals.first() else {
        return Value::Null;
    };
    if c.type_ == "date"
        && let Some(t) = first.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok())
    {
        return json!(human_age(t.duration_until(jiff::Timestamp::now()).as_secs()));
    }
    if vals.len() > 1 {
        return json!(
            vals.iter()
                .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    first.clone()
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn columns_and_cells(def: &ResourceDef, version: &str, v: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(s(v, "/metadata/name"));
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            let statuses =
                v.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let total = v.pointer("/spec/containers").and_then(Value::as_array).map(|a| a.len()).unwrap_or(0);
            let ready = statuses.iter().filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true)).count();
            let restarts: i64 = statuses.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum();
            let mut status = s(v, "/status/phase").to_string();
            for c in &statuses {
                if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
                    status = r.to_string();
                }
            }
            if v.pointer("/metadata/deletionTimestamp").is_some() {
                status = "Terminating".into();
            }
            let node = s(v, "/spec/nodeName");
            (
                vec![
                    col("Name", "string", "name", 0),
                    col("Ready", "string", "", 0),
                    col("Status", "string", "", 0),
                    col("Restarts", "string", "", 0),
                    col("Age", "string", "", 0),
                    col("IP", "string", "", 1),
                    col("Node", "string", "", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(status),
                    json!(restarts.to_string()),
                    json!(age(v)),
                    json!(if s(v, "/status/podIP").is_empty() { "<none>" } else { s(v, "/status/podIP") }),
                    json!(if node.is_empty() { "<none>" } else { node }),
                ],
            )
        }
        ("", "nodes") => {
            let ready = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                        .and_then(|c| c.get("status"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let mut status = if ready == "True" { "Ready".to_string() } else { "NotReady".to_string() };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = v
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string)).collect()
                })
                .unwrap_or_default();
            (
                vec![
                    col("Name", "string", "name", 0),
                    col("Status", "string", "", 0),
                    col("Roles", "string", "", 0),
                    col("Age", "string", "", 0),
                    col("Version", "string", "", 0),
                ],
                vec![
                    name,
                    json!(status),
                    json!(if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }),
                    json!(age(v)),
                    json!(s(v, "/status/nodeInfo/kubeletVersion")),
                ],
            )
        }
        ("", "events") | ("events.k8s.io", "events") => event_row(v),
        ("", "namespaces") => (
            vec![col("Name", "string", "name", 0), col("Status", "string", "", 0), col("Age", "string", "", 0)],
            vec![name, json!(s(v, "/status/phase")), json!(age(v))],
        ),
        ("", "services") => {
            let ports: Vec<String> = v
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ext = v
                .pointer("/status/loadBalancer/ingress/0/ip")
                .and_then(Value::as_str)
                .unwrap_or(if s(v, "/spec/type") == "LoadBalancer" { "<pending>" } else { "<none>" });
            (
                vec![
                    col("Name", "string", "name", 0),
                    col("Type", "string", "", 0),
                    col("Cluster-IP", "string", "", 0),
                    col("External-IP", "string", "", 0),
                    col("Port(s)", "string", "", 0),
                    col("Age", "string", "", 0),
                ],
                vec![
                    name,
                    json!(s(v, "/spec/type")),
                    json!(s(v, "/spec/clusterIP")),
                    json!(ext),
                    json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }),
                    json!(age(v)),
                ],
            )
        }
        ("apps", "deployments") => {
            let n = |p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            (
                vec![
                    col("Name", "string", "name", 0),
                    col("Ready", "string", "", 0),
                    col("Up-to-date", "integer", "", 0),
                    col("Available", "integer", "", 0),
                    col("Age", "string", "", 0),
                ],
                vec![
                    name,
                    json!(format!("{}/{}", n("/status/readyReplicas"), n("/spec/replicas"))),
                    json!(n("/status/updatedReplicas")),
                    json!(n("/status/availableReplicas")),
                    json!(age(v)),
                ],
            )
        }
        ("", "persistentvolumeclaims") => (
            vec![
                col("Name", "string", "name", 0),
                col("Status", "string", "", 0),
                col("Volume", "string", "", 0),
                col("Capacity", "string", "", 0),
                col("Access Modes", "string", "", 0),
                col("StorageClass", "string", "", 0),
                col("Age", "string", "", 0),
            ],
            vec![
                name,
                json!(s(v, "/status/phase")),
                json!(s(v, "/spec/volumeName")),
                json!(s(v, "/status/capacity/storage")),
                json!(
                    v.pointer("/spec/accessModes/0")
                        .and_then(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO",
                            "ReadWriteMany" => "RWX",
                            "ReadOnlyMany" => "ROX",
                            _ => "RWOP",
                        })
                        .unwrap_or("")
                ),
                json!(s(v, "/spec/storageClassName")),
                json!(age(v)),
            ],
        ),
        _ => {
            let cols: Vec<PrinterColumn> =
                def.crd.as_ref().and_then(|c| c.printer_columns.get(version)).cloned().unwrap_or_default();
            let mut defs = vec![col("Name", "string", "name", 0)];
            let mut cells = vec![name];
            for c in &cols {
                defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
                cells.push(cell_for(c, v));
            }
            if !cols.iter().any(|c| c.name == "Age") {
                defs.push(col("Age", "string", "", 0));
                cells.push(json!(age(v)));
            }
            (defs, cells)
        }
    }
}

fn row(def: &ResourceDef, version: &str, v: &Value, include: &str) -> (Vec<Value>, Value) {
    let (cols, cells) = columns_and_cells(def, version, v);
    let mut r = json!({"cells": cells});
    match include {
        "None" => {}
        "Object" if crate::eventview::is_view(def) => r["object"] = crate::eventview::to_v1(v),
        "Object" => r["object"] = v.clone(),
        _ => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
        }
    }
    (cols, r)
}

fn table(def: &ResourceDef, version: &str, items: Vec<Value>, rv: u64, cont: Option<String>, query: &Query) -> Vec<u8> {
    let include = query.get("includeObject").unwrap_or("Metadata");
    let mut cols = columns_and_cells(def, version, &json!({})).0;
    let mut rows = Vec::new();
    for v in &items {
        let (c, r) = row(def, version, v, include);
        cols = c;
        rows.push(r);
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    serde_json::to_vec(&json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows})).unwrap_or_default()
}

pub fn list_table(def: &ResourceDef, version: &str, res: &ListResult, query: &Query) -> Vec<u8> {
    let items = res.items.iter().map(|o| o.value()).collect();
    table(def, version, items, res.rv, res.continue_token.clone(), query)
}

pub fn object_table(def: &ResourceDef, version: &str, o: &Obj, query: &Query) -> Vec<u8> {
    table(def, version, vec![o.value()], o.rv, None, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_forms() {
        let v = json!({"status": {"phase": "Ready", "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "items": [{"n": 1}, {"n": 2}]});
        assert_eq!(json_path(&v, ".status.phase"), vec![json!("Ready")]);
        assert_eq!(json_path(&v, ".status.conditions[?(@.type==\"Ready\")].status"), vec![json!("True")]);
        assert_eq!(json_path(&v, ".items[*].n"), vec![json!(1), json!(2)]);
        assert_eq!(json_path(&v, ".items[1].n"), vec![json!(2)]);
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(150), "2m30s");
        assert_eq!(human_age(3600 * 5 + 60), "5h1m");
        assert_eq!(human_age(86400 * 3), "3d");
    }
}
