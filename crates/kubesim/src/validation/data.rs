//! ConfigMap and Secret data, as upstream's `ValidateConfigMap` and
//! `ValidateSecret` check it: every key a config key (letters, digits, `-`,
//! `_`, `.`; not `.`, `..` or starting with `..`; at most 253 characters), no
//! key in both `data` and `binaryData`, and at most 1 MiB of values.

use crate::error::FieldError;
use serde_json::Value;

/// Upstream's `MaxSecretSize`, which also bounds a ConfigMap.
pub const MAX_SIZE: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// What is wrong with `key` as a ConfigMap or Secret key (upstream's `IsConfigMapKey`).
pub fn key_errors(key: &str) -> Vec<String> {
    let mut e = Vec::new();
    if key.len() > 253 {
        e.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        e.push(KEY_MSG.to_string());
    }
    match key {
        "." => e.push("must not be '.'".to_string()),
        ".." => e.push("must not be '..'".to_string()),
        k if k.starts_with("..") => e.push("must not start with '..'".to_string()),
        _ => {}
    }
    e
}

fn check_keys(obj: &Value, field: &str, out: &mut Vec<FieldError>) {
    for key in obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
        for msg in key_errors(key) {
            out.push(FieldError::invalid(format!("{field}[{key}]"), key, msg));
        }
    }
}

/// The bytes a base64 value decodes to.
fn decoded_len(b64: &str) -> usize {
    let pad = b64.bytes().rev().take_while(|&c| c == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad)
}

fn total(obj: &Value, field: &str, base64: bool) -> usize {
    let values = obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.values());
    values.filter_map(Value::as_str).map(|v| if base64 { decoded_len(v) } else { v.len() }).sum()
}

pub(super) fn config_map(obj: &Value, out: &mut Vec<FieldError>) {
    check_keys(obj, "data", out);
    check_keys(obj, "binaryData", out);
    if let (Some(data), Some(binary)) =
        (obj.get("data").and_then(Value::as_object), obj.get("binaryData").and_then(Value::as_object))
    {
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            out.push(FieldError::invalid(format!("data[{key}]"), key, "duplicate of key present in binaryData"));
        }
    }
    if total(obj, "data", false) + total(obj, "binaryData", true) > MAX_SIZE {
        // Upstream's path for "the whole object" (`field.NewPath("")`) prints as `[]`.
        out.push(FieldError::too_long("[]", MAX_SIZE));
    }
}

pub(super) fn secret(obj: &Value, out: &mut Vec<FieldError>) {
    check_keys(obj, "data", out);
    if total(obj, "data", true) > MAX_SIZE {
        out.push(FieldError::too_long("data", MAX_SIZE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_sizes() {
        assert!(key_errors("app.conf").is_empty() && key_errors("KEY_name-1").is_empty());
        assert_eq!(key_errors("my file"), vec![KEY_MSG.to_string()]);
        assert_eq!(key_errors(".."), vec!["must not be '..'".to_string()]);
        assert_eq!(key_errors("..x"), vec!["must not start with '..'".to_string()]);
        assert_eq!(decoded_len("YWJj"), 3);
        assert_eq!(decoded_len("YWI="), 2);
        assert_eq!(decoded_len("YQ=="), 1);
    }
}
