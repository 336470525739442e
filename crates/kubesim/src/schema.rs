//! Structural schemas of custom resources: defaulting, pruning of unknown
//! fields, and OpenAPI v3 validation with upstream's messages
//! (k8s.io/apiextensions-apiserver). CEL rules (`x-kubernetes-validations`)
//! are not evaluated.

use crate::error::{FieldError, FieldErrorKind};
use serde_json::{Map, Value};

/// Outcome of checking an object against its schema.
#[derive(Debug, Default)]
pub struct Checked {
    /// Paths of fields that were dropped because the schema does not know them.
    pub pruned: Vec<String>,
    pub errors: Vec<FieldError>,
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Applies defaults, prunes unknown fields and validates `obj` (a whole custom
/// resource) against the version's `openAPIV3Schema`.
pub fn check(schema: &Value, obj: &mut Value) -> Checked {
    let mut out = Checked::default();
    let Some(m) = obj.as_object_mut() else { return out };
    let props = schema.get("properties").and_then(Value::as_object);
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
    for (k, v) in m.iter_mut() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            walk(s, v, k, &mut out);
        }
    }
    default_missing(schema, m);
    if !preserve {
        let known: Vec<String> = m
            .keys()
            .filter(|k| {
                matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.is_some_and(|p| p.contains_key(*k))
            })
            .cloned()
            .collect();
        let unknown: Vec<String> = m.keys().filter(|k| !known.contains(k)).cloned().collect();
        for k in unknown {
            m.remove(&k);
            out.pruned.push(k);
        }
    }
    required(schema, m, "", &mut out);
    out
}

fn default_missing(schema: &Value, m: &mut Map<String, Value>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            if !m.contains_key(k)
                && let Some(d) = s.get("default")
            {
                m.insert(k.clone(), d.clone());
            }
        }
    }
}

fn required(schema: &Value, m: &Map<String, Value>, path: &str, out: &mut Checked) {
    for r in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !m.contains_key(r) {
            out.errors.push(FieldError::required(join(path, r), ""));
        }
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Checked) {
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && schema.get("type").is_some() {
            let t = schema.get("type").and_then(Value::as_str).unwrap_or("");
            out.errors.push(FieldError::invalid_raw(
                path,
                "\"null\"",
                format!("{path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            out.errors.push(FieldError::invalid_raw(
                path,
                shown(v),
                format!("{path} in body must be of type {t}: {:?}", actual),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let supported: Vec<String> =
            options.iter().map(|o| o.as_str().map(str::to_string).unwrap_or_else(|| o.to_string())).collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        out.errors.push(FieldError::not_supported(
            path,
            v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
            &refs,
        ));
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                let excl = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
                if x < min || (excl && x == min) {
                    let rel = if excl { "greater than" } else { "greater than or equal to" };
                    out.errors.push(FieldError::invalid_raw(
                        path,
                        &*n,
                        format!("{path} in body should be {rel} {min}"),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                let excl = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
                if x > max || (excl && x == max) {
                    let rel = if excl { "less than" } else { "less than or equal to" };
                    out.errors.push(FieldError::invalid_raw(
                        path,
                        &*n,
                        format!("{path} in body should be {rel} {max}"),
                    ));
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.errors.push(FieldError {
                    kind: FieldErrorKind::TooLong,
                    field: path.to_string(),
                    value: None,
                    detail: format!("may not be more than {max} bytes"),
                });
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.errors.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => {
                        out.errors.push(FieldError::invalid(
                            path,
                            s.as_str(),
                            format!("{path} in body should match '{p}'"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                out.errors.push(FieldError {
                    kind: FieldErrorKind::TooLong,
                    field: path.to_string(),
                    value: None,
                    detail: format!("must have at most {max} items"),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                out.errors.push(FieldError::invalid_raw(
                    path,
                    n,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    walk(item_schema, it, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
                || schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true)
                || schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = join(path, &k);
                if let Some(s) = props.and_then(|p| p.get(&k)) {
                    if let Some(c) = m.get_mut(&k) {
                        walk(s, c, &child_path, out);
                    }
                } else if let Some(s) = additional {
                    if let Some(c) = m.get_mut(&k) {
                        walk(s, c, &child_path, out);
                    }
                } else if !preserve && (props.is_some() || schema.get("type").and_then(Value::as_str) == Some("object"))
                {
                    // Known properties only, or an object with none declared.
                    m.remove(&k);
                    out.pruned.push(child_path);
                }
            }
            default_missing(schema, m);
            // Defaults may themselves need walking (nested defaults).
            if let Some(props) = props {
                for (k, s) in props {
                    if s.get("default").is_some()
                        && let Some(c) = m.get_mut(k)
                        && c.is_object()
                    {
                        let mut nested = Checked::default();
                        walk(s, c, &join(path, k), &mut nested);
                        out.errors.extend(nested.errors);
                    }
                }
            }
            required(schema, m, path, out);
            let n = m.len() as u64;
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && n > max
            {
                out.errors.push(FieldError::forbidden(path, format!("must have at most {max} properties")));
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
                && n < min
            {
                out.errors.push(FieldError::invalid_raw(
                    path,
                    n,
                    format!("{path} in body should have at least {min} properties"),
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                "size": {"type": "integer", "minimum": 1, "default": 3},
                "kind": {"type": "string", "enum": ["Team", "User"]},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }})
    }

    #[test]
    fn defaults_prunes_and_keeps_preserved() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"name": "abc", "unknown": 1, "extra": {"anything": true}, "port": "http", "labels": {"a": "b"}}, "junk": 1});
        let c = check(&schema(), &mut o);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(o["spec"]["size"], 3);
        assert!(o["spec"].get("unknown").is_none());
        assert!(o.get("junk").is_none());
        assert_eq!(o["spec"]["extra"]["anything"], true);
        assert_eq!(c.pruned, vec!["spec.unknown".to_string(), "junk".to_string()]);
    }

    #[test]
    fn validation_messages() {
        let mut o =
            json!({"spec": {"name": "ABC", "size": 0, "kind": "Robot", "tags": ["a", "b", "c"], "labels": {"a": 1}}});
        let c = check(&schema(), &mut o);
        let msgs: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.contains(&"spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(
                &"spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1".to_string()
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"spec.kind: Unsupported value: \"Robot\": supported values: \"Team\", \"User\"".to_string()),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.starts_with("spec.tags: Too long")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.starts_with("spec.labels.a: Invalid value: 1: spec.labels.a in body must be of type string")), "{msgs:?}");
        let mut missing = json!({"spec": {}});
        let c = check(&schema(), &mut missing);
        assert_eq!(c.errors[0].to_string(), "spec.name: Required value");
    }
}
