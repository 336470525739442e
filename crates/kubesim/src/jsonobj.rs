//! Mutable access to JSON objects that may not exist yet.

use serde_json::{Map, Value};

/// The object in `slot`, made an (empty) object first if it is anything else.
pub fn ensure_object(slot: &mut Value) -> &mut Map<String, Value> {
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        other => {
            // Unreachable: `slot` was made an object above.
            *other = Value::Object(Map::new());
            ensure_object(other)
        }
    }
}

/// The object under `key` of `v` (itself made an object if needed), created empty when missing.
pub fn child_object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let root = ensure_object(v);
    ensure_object(root.entry(key.to_string()).or_insert(Value::Null))
}
