//! Strategic merge patch (`application/strategic-merge-patch+json`) for the
//! built-in kinds: maps merge, `null` deletes, lists with a patch merge key merge
//! by that key, other lists are replaced; the `$patch`, `$retainKeys`,
//! `$setElementOrder/…` and `$deleteFromPrimitiveList/…` directives are honoured.

use super::listtype::{ListType, key_field, list_type};
use crate::registry::ResourceDef;
use serde_json::{Map, Value};

pub fn apply(def: &ResourceDef, version: &str, target: &Value, patch: &Value) -> Result<Value, String> {
    let mut path = Vec::new();
    merge_value(def, version, target, patch, &mut path)
}

fn merge_value(
    def: &ResourceDef,
    version: &str,
    target: &Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Value, String> {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(def, version, t, p, path).map(Value::Object),
        (_, Value::Object(p)) => {
            let empty = Map::new();
            merge_map(def, version, &empty, p, path).map(Value::Object)
        }
        _ => Ok(patch.clone()),
    }
}

fn merge_map(
    def: &ResourceDef,
    version: &str,
    target: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Map<String, Value>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return Ok(p);
        }
        Some("delete") => return Ok(Map::new()),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other:?} in map: {patch:?}")),
    }
    let mut out = target.clone();
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (out.get_mut(field), pv.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        path.push(k.clone());
        let merged = match (out.get(k), pv) {
            (Some(Value::Array(t)), Value::Array(p)) => merge_list(def, version, t, p, path)?,
            (_, Value::Array(p)) => merge_list(def, version, &[], p, path)?,
            (Some(t), _) => merge_value(def, version, t, pv, path)?,
            (None, _) => merge_value(def, version, &Value::Null, pv, path)?,
        };
        path.pop();
        out.insert(k.clone(), merged);
    }
    Ok(out)
}

fn merge_list(
    def: &ResourceDef,
    version: &str,
    target: &[Value],
    patch: &[Value],
    path: &mut Vec<String>,
) -> Result<Value, String> {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    let lt = list_type(def, version, &names);
    // A `{"$patch": "replace"}` element replaces the whole list.
    if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Ok(Value::Array(patch.iter().filter(|p| p.get("$patch").is_none()).cloned().collect()));
    }
    let key = match &lt {
        ListType::Map(keys) => keys.first().map(|k| k.to_string()),
        ListType::MapOwned(keys) => keys.first().cloned(),
        _ => None,
    };
    let Some(key) = key else {
        return Ok(Value::Array(patch.to_vec()));
    };
    let mut out: Vec<Value> = target.to_vec();
    for p in patch {
        let pk = key_field(p, &key);
        let pos = out.iter().position(|t| key_field(t, &key) == pk);
        if p.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                out.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => out[i] = merge_value(def, version, &out[i], p, path)?,
            None => out.push(merge_value(def, version, &Value::Null, p, path)?),
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let reg = Registry::with_builtins();
        let (_, pods) = reg.find("", "pods").unwrap();
        let target = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"}
        ]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "x2", "env": [{"name": "B", "value": "2"}]}
        ]}});
        let out = apply(pods, "v1", &target, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "x2");
        assert_eq!(out["spec"]["containers"][0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(out["spec"]["containers"][1]["name"], "b");
    }

    #[test]
    fn directives() {
        let reg = Registry::with_builtins();
        let (_, pods) = reg.find("", "pods").unwrap();
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "tolerations": [{"key": "k"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"containers": [{"name": "b", "$patch": "delete"}], "tolerations": [{"key": "z"}]}});
        let out = apply(pods, "v1", &target, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "z"}]));
    }
}
