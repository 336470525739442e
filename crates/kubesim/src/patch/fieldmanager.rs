//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply.
//!
//! What is modelled, following structured-merge-diff:
//! - every leaf field an applier sends is owned by that manager (operation Apply);
//!   keyed list items (`k:{...}`) and set items (`v:...`) are owned individually,
//!   atomic lists as a whole;
//! - re-applying without a field removes it unless another manager owns it too;
//! - applying a value that differs from one owned by another manager is a 409
//!   conflict listing the fields, unless `force=true`, which takes ownership;
//! - writes that are not applies (create, update, patch) give their manager
//!   (operation Update) ownership of the fields they changed and take it from others.
//!
//! Not modelled: per-version conversion of field sets, and ownership of fields
//! inside a managed `status` when written through the main resource (it is reset).

use super::listtype::{ListType, key_field, list_type, same_key};
use crate::registry::ResourceDef;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A set of leaf paths; each element is a FieldsV1 path element:
/// `f:name`, `k:{"name":"x"}`, `v:"x"`, or `.` (the item itself).
pub type FieldSet = BTreeSet<Vec<String>>;

/// Metadata fields that are never owned.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

pub struct Scope<'a> {
    pub def: &'a ResourceDef,
    pub version: &'a str,
    /// Which part of the object this write may change.
    pub subresource: Option<&'a str>,
}

impl Scope<'_> {
    fn skip_top(&self, k: &str) -> bool {
        if k == "apiVersion" || k == "kind" {
            return true;
        }
        match self.subresource {
            Some("status") => k != "status",
            _ => self.def.status_subresource && k == "status",
        }
    }
}

fn key_element(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        let v = key_field(item, k);
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    }
    format!("k:{}", Value::Object(m))
}

/// Collects the leaf paths of an object.
pub fn fields_of(scope: &Scope, obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if scope.skip_top(k) {
                continue;
            }
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if UNOWNED_META.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut p = vec!["f:metadata".to_string(), format!("f:{mk}")];
                        let mut names = vec!["metadata", mk.as_str()];
                        collect(scope, mv, &mut p, &mut names, &mut out);
                    }
                }
                continue;
            }
            let mut p = vec![format!("f:{k}")];
            let mut names = vec![k.as_str()];
            collect(scope, v, &mut p, &mut names, &mut out);
        }
    }
    out
}

fn collect<'v>(scope: &Scope, v: &'v Value, path: &mut Vec<String>, names: &mut Vec<&'v str>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(format!("f:{k}"));
                names.push(k.as_str());
                collect(scope, c, path, names, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_type(scope.def, scope.version, names) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for it in items {
                    let mut p = path.clone();
                    p.push(format!("v:{it}"));
                    out.insert(p);
                }
            }
            lt => {
                let keys = lt.keys().unwrap_or_default();
                for it in items {
                    path.push(key_element(it, &keys));
                    let mut dot = path.clone();
                    dot.push(".".into());
                    out.insert(dot);
                    if let Some(m) = it.as_object() {
                        for (k, c) in m {
                            path.push(format!("f:{k}"));
                            names.push(k.as_str());
                            collect(scope, c, path, names, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn find_item<'a>(items: &'a [Value], el: &str) -> Option<(usize, &'a Value)> {
    if let Some(k) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        let keys: Vec<&str> = key.keys().map(String::as_str).collect();
        let probe = Value::Object(key.clone());
        items.iter().enumerate().find(|(_, it)| same_key(it, &probe, &keys))
    } else if let Some(v) = el.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        items.iter().enumerate().find(|(_, it)| **it == want)
    } else {
        None
    }
}

/// The value at a path, if present.
pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            return Some(cur);
        }
        cur = if let Some(f) = el.strip_prefix("f:") { cur.get(f)? } else { find_item(cur.as_array()?, el)?.1 };
    }
    Some(cur)
}

/// Removes the field (or list item, for paths ending in `.` or `v:`) at a path.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if last == "." {
        // Remove the keyed item: the parent of the item is the list.
        if let Some((item, list_path)) = parents.split_last()
            && let Some(Value::Array(items)) = get_path_mut(obj, list_path)
        {
            let snapshot = items.clone();
            if let Some((i, _)) = find_item(&snapshot, item) {
                items.remove(i);
            }
        }
        return;
    }
    let Some(parent) = get_path_mut(obj, parents) else {
        return;
    };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let Value::Array(items) = parent {
        let snapshot = items.clone();
        if let Some((i, _)) = find_item(&snapshot, last) {
            items.remove(i);
        }
    }
}

fn get_path_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)?
        } else {
            let items = cur.as_array_mut()?;
            let (i, _) = find_item(items, el)?;
            &mut items[i]
        };
    }
    Some(cur)
}

/// Merges an applied configuration into the live object.
pub fn merge_applied(scope: &Scope, live: &Value, applied: &Value) -> Value {
    let mut names = Vec::new();
    merge_rec(scope, live, applied, &mut names, true)
}

fn merge_rec<'v>(scope: &Scope, live: &Value, applied: &'v Value, names: &mut Vec<&'v str>, top: bool) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                if top && scope.skip_top(k) && k != "apiVersion" && k != "kind" {
                    continue;
                }
                names.push(k.as_str());
                let merged = match out.get(k) {
                    Some(lv) => merge_rec(scope, lv, av, names, false),
                    None => av.clone(),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match list_type(scope.def, scope.version, names) {
            ListType::Atomic => applied.clone(),
            ListType::Set => {
                let mut out = l.clone();
                for it in a {
                    if !out.contains(it) {
                        out.push(it.clone());
                    }
                }
                Value::Array(out)
            }
            lt => {
                let keys = lt.keys().unwrap_or_default();
                let mut out = l.clone();
                for it in a {
                    match out.iter().position(|x| same_key(x, it, &keys)) {
                        Some(i) => out[i] = merge_rec(scope, &out[i], it, names, false),
                        None => out.push(it.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: Option<String>,
    pub time: String,
    pub fields: FieldSet,
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                flatten(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                subresource: e.get("subresource").and_then(Value::as_str).map(str::to_string),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

fn flatten(v: &Value, path: &mut Vec<String>, out: &mut FieldSet) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(k.clone());
                flatten(c, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

fn nest(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in fields {
        let mut cur = &mut root;
        for el in p {
            cur = crate::jsonobj::ensure_object(cur.entry(el.clone()).or_insert_with(|| json!({})));
        }
    }
    Value::Object(root)
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": nest(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Renders a path like upstream's conflict messages: `.spec.containers[name="a"].image`.
pub fn render_path(p: &[String]) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

pub struct ApplyOutcome {
    pub object: Value,
    /// (manager, apiVersion, path) of each conflict; empty when applied.
    pub conflicts: Vec<(String, String, Vec<String>)>,
}

/// Server-side apply of `applied` by `manager` onto `live` (Null when creating).
pub fn apply(scope: &Scope, live: &Value, applied: &Value, manager: &str, force: bool, now: &str) -> ApplyOutcome {
    let applied_set = fields_of(scope, applied);
    let mut entries = read_entries(live);
    let sub = scope.subresource.map(str::to_string);
    let api_version = scope.def.api_version(scope.version);

    // Conflicts: a field owned by someone else whose value would change.
    let mut conflicts = Vec::new();
    for e in &entries {
        if e.manager == manager && e.operation == "Apply" && e.subresource == sub {
            continue;
        }
        for p in applied_set.intersection(&e.fields) {
            if p.last().is_some_and(|l| l == ".") {
                continue;
            }
            if get_path(live, p) != get_path(applied, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return ApplyOutcome { object: live.clone(), conflicts };
    }
    if force {
        for e in entries.iter_mut() {
            if e.manager == manager && e.operation == "Apply" {
                continue;
            }
            for (_, _, p) in &conflicts {
                e.fields.remove(p);
            }
        }
    }

    // Fields this manager applied before and no longer does, owned by nobody else, go.
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let base = if live.is_null() { json!({}) } else { live.clone() };
    let mut merged = merge_applied(scope, &base, applied);
    for p in previous.difference(&applied_set) {
        let others = entries
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub) && e.fields.contains(p));
        if !others {
            remove_path(&mut merged, p);
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version,
        subresource: sub,
        time: now.to_string(),
        fields: applied_set,
    });
    prune_missing(&merged, &mut entries);
    write_entries(&mut merged, &entries);
    ApplyOutcome { object: merged, conflicts: vec![] }
}

/// Drops owned paths that no longer exist in the object.
fn prune_missing(obj: &Value, entries: &mut [Entry]) {
    for e in entries.iter_mut() {
        e.fields.retain(|p| get_path(obj, p).is_some());
    }
}

/// Records ownership for a non-apply write by `manager`: fields it changed are
/// now its own (operation Update) and no longer anyone else's.
pub fn track_update(scope: &Scope, old: &Value, new: &mut Value, manager: &str, now: &str) {
    let before = fields_of(scope, old);
    let after = fields_of(scope, new);
    let mut changed: FieldSet =
        after.iter().filter(|p| !before.contains(*p) || get_path(old, p) != get_path(new, p)).cloned().collect();
    // Paths whose parent was newly created carry their "." marker in `after` already.
    changed.retain(|p| p.last().is_none_or(|l| l != ".") || !before.contains(p));
    let mut entries = read_entries(new);
    let sub = scope.subresource.map(str::to_string);
    if !changed.is_empty() {
        for e in entries.iter_mut() {
            if e.manager == manager && e.operation == "Update" && e.subresource == sub {
                continue;
            }
            for p in &changed {
                if p.last().is_none_or(|l| l != ".") {
                    e.fields.remove(p);
                }
            }
        }
        match entries.iter_mut().find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_string();
                e.api_version = scope.def.api_version(scope.version);
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: scope.def.api_version(scope.version),
                subresource: sub,
                time: now.to_string(),
                fields: changed,
            }),
        }
    }
    prune_missing(new, &mut entries);
    write_entries(new, &entries);
}

/// Upstream's conflict message.
pub fn conflict_message(conflicts: &[(String, String, Vec<String>)]) -> String {
    if conflicts.len() == 1 {
        let (m, v, p) = &conflicts[0];
        return format!("Apply failed with 1 conflict: conflict with {m:?} using {v}: {}", render_path(p));
    }
    let mut s = format!("Apply failed with {} conflicts: ", conflicts.len());
    let mut by_manager: Vec<(&String, &String, Vec<String>)> = Vec::new();
    for (m, v, p) in conflicts {
        match by_manager.iter_mut().find(|(bm, bv, _)| *bm == m && *bv == v) {
            Some(x) => x.2.push(render_path(p)),
            None => by_manager.push((m, v, vec![render_path(p)])),
        }
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, v, ps)| {
            if ps.len() == 1 {
                format!("conflict with {m:?} using {v}: {}", ps[0])
            } else {
                format!("conflicts with {m:?} using {v}:\n- {}", ps.join("\n- "))
            }
        })
        .collect();
    s.push_str(&parts.join("\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn scope(reg: &Registry, plural: &str, group: &str) -> std::sync::Arc<ResourceDef> {
        reg.find(group, plural).unwrap().1.clone()
    }

    #[test]
    fn reapply_removes_dropped_fields_and_keeps_others() {
        let reg = Registry::with_builtins();
        let def = scope(&reg, "configmaps", "");
        let s = Scope { def: &def, version: "v1", subresource: None };
        let a1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1", "b": "2"}});
        let r1 = apply(&s, &Value::Null, &a1, "m1", false, "t");
        assert!(r1.conflicts.is_empty());
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let r2 = apply(&s, &r1.object, &a2, "m1", false, "t");
        assert_eq!(r2.object["data"], json!({"a": "1"}));
        assert!(r2.object["metadata"]["labels"].get("x").is_none());
    }

    #[test]
    fn conflicts_and_force() {
        let reg = Registry::with_builtins();
        let def = scope(&reg, "configmaps", "");
        let s = Scope { def: &def, version: "v1", subresource: None };
        let a1 = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let r1 = apply(&s, &Value::Null, &a1, "m1", false, "t");
        let a2 = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        let r2 = apply(&s, &r1.object, &a2, "m2", false, "t");
        assert_eq!(r2.conflicts.len(), 1);
        assert_eq!(
            conflict_message(&r2.conflicts),
            "Apply failed with 1 conflict: conflict with \"m1\" using v1: .data.a"
        );
        // Same value: shared ownership, no conflict.
        let r3 = apply(&s, &r1.object, &a1, "m2", false, "t");
        assert!(r3.conflicts.is_empty());
        let r4 = apply(&s, &r1.object, &a2, "m2", true, "t");
        assert!(r4.conflicts.is_empty());
        assert_eq!(r4.object["data"]["a"], "2");
        let entries = read_entries(&r4.object);
        assert!(
            entries
                .iter()
                .all(|e| { e.manager == "m2" || !e.fields.contains(&vec!["f:data".to_string(), "f:a".to_string()]) })
        );
    }

    #[test]
    fn keyed_lists_merge_per_item() {
        let reg = Registry::with_builtins();
        let def = scope(&reg, "pods", "");
        let s = Scope { def: &def, version: "v1", subresource: None };
        let live = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let a = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "b", "image": "y"}]}});
        let r = apply(&s, &live, &a, "m", false, "t");
        assert_eq!(r.object["spec"]["containers"].as_array().unwrap().len(), 2);
        let p = vec![
            "f:spec".to_string(),
            "f:containers".to_string(),
            "k:{\"name\":\"b\"}".to_string(),
            "f:image".to_string(),
        ];
        assert_eq!(get_path(&r.object, &p), Some(&json!("y")));
    }

    #[test]
    fn update_takes_ownership() {
        let reg = Registry::with_builtins();
        let def = scope(&reg, "configmaps", "");
        let s = Scope { def: &def, version: "v1", subresource: None };
        let r1 = apply(&s, &Value::Null, &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}), "m1", false, "t");
        let mut new = r1.object.clone();
        new["data"]["a"] = json!("9");
        track_update(&s, &r1.object, &mut new, "editor", "t");
        let r2 = apply(&s, &new, &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}), "m1", false, "t");
        assert_eq!(r2.conflicts[0].0, "editor");
    }
}
