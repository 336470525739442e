//! How lists merge: atomically, as sets, or as maps keyed by some fields —
//! upstream's patchMergeKey / `x-kubernetes-list-type` knowledge for the
//! built-in kinds, and the CRD's structural schema for custom resources.

use crate::registry::ResourceDef;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    /// Keyed by these fields (the first is the strategic-merge patchMergeKey).
    Map(Vec<&'static str>),
    /// Keyed by fields named in a CRD schema.
    MapOwned(Vec<String>),
}

impl ListType {
    pub fn keys(&self) -> Option<Vec<&str>> {
        match self {
            ListType::Map(k) => Some(k.clone()),
            ListType::MapOwned(k) => Some(k.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

/// The list type at `path` (field names from the object root, list indices left out).
pub fn list_type(def: &ResourceDef, version: &str, path: &[&str]) -> ListType {
    if let Some(schema) = def.schema(version) {
        return schema_list_type(schema, path);
    }
    builtin_list_type(def, path)
}

fn builtin_list_type(def: &ResourceDef, path: &[&str]) -> ListType {
    use ListType::*;
    let last = path.last().copied().unwrap_or("");
    let parent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
    match (path, last) {
        (["metadata", "ownerReferences"], _) => Map(vec!["uid"]),
        (["metadata", "finalizers"], _) => Set,
        (_, "containers" | "initContainers" | "ephemeralContainers") => Map(vec!["name"]),
        (_, "ports") if matches!(parent, "containers" | "initContainers" | "ephemeralContainers") => {
            Map(vec!["containerPort", "protocol"])
        }
        (["spec", "ports"], _) if def.kind == "Service" => Map(vec!["port", "protocol"]),
        (_, "env") => Map(vec!["name"]),
        (_, "volumeMounts") => Map(vec!["mountPath"]),
        (_, "volumeDevices") => Map(vec!["devicePath"]),
        (_, "volumes") if parent == "spec" => Map(vec!["name"]),
        (_, "imagePullSecrets" | "resourceClaims" | "schedulingGates") => Map(vec!["name"]),
        (_, "hostAliases") => Map(vec!["ip"]),
        (_, "topologySpreadConstraints") => Map(vec!["topologyKey", "whenUnsatisfiable"]),
        (_, "conditions") => Map(vec!["type"]),
        (["status", "addresses"], _) if def.kind == "Node" => Map(vec!["type"]),
        _ => Atomic,
    }
}

fn schema_list_type(schema: &Value, path: &[&str]) -> ListType {
    let mut cur = schema;
    for (i, name) in path.iter().enumerate() {
        // Step through arrays' items transparently.
        while cur.get("type").and_then(Value::as_str) == Some("array") {
            match cur.get("items") {
                Some(items) => cur = items,
                None => return ListType::Atomic,
            }
        }
        let next = cur
            .get("properties")
            .and_then(|p| p.get(*name))
            .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => cur = n,
            None => {
                // metadata lists of a custom resource follow ObjectMeta's rules.
                if i == 0 && *name == "metadata" {
                    return match path.get(1) {
                        Some(&"ownerReferences") => ListType::Map(vec!["uid"]),
                        Some(&"finalizers") => ListType::Set,
                        _ => ListType::Atomic,
                    };
                }
                return ListType::Atomic;
            }
        }
    }
    match cur.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::MapOwned(
            cur.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// Whether two list items share the same key.
pub fn same_key(a: &Value, b: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| key_field(a, k) == key_field(b, k))
}

/// A key field's value, with upstream's defaulting of `protocol` to TCP.
pub fn key_field(item: &Value, k: &str) -> Value {
    match item.get(k) {
        Some(v) => v.clone(),
        None if k == "protocol" => Value::String("TCP".into()),
        None => Value::Null,
    }
}
