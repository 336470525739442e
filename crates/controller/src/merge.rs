//! The JSON merge patch (RFC 7386) that turns one object into another. A
//! merge patch of a whole status leaves alone every field it does not name,
//! and Paddock's status types leave empty fields out when serialised: a
//! field that went empty (a pool's message once its cause is gone, a failed
//! instance's pods, a recovered VPN's failure) stayed on the object. This
//! names each such field with `null`, which removes it.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`.
pub fn patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                let v = match o.get(k) {
                    Some(ov) if ov == nv => continue,
                    Some(ov @ Value::Object(_)) if nv.is_object() => patch(ov, nv),
                    _ => nv.clone(),
                };
                out.insert(k.clone(), v);
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        (_, n) => n.clone(),
    }
}

/// The merge patch that turns `old` into `new`, both serialised (a value
/// that does not serialise counts as absent).
pub fn of<T: serde::Serialize>(old: Option<&T>, new: &T) -> Value {
    let old = old.and_then(|o| serde_json::to_value(o).ok()).unwrap_or(Value::Object(Map::new()));
    let new = serde_json::to_value(new).unwrap_or(Value::Object(Map::new()));
    patch(&old, &new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_that_went_away_is_removed_and_unchanged_ones_are_not_sent() {
        let old = json!({"state": "Blocked", "message": "exceeded quota", "ready": 3, "vpn": {"ready": false, "failure": {"reason": "X"}}});
        let new = json!({"state": "Ready", "ready": 3, "vpn": {"ready": true}});
        let p = patch(&old, &new);
        assert_eq!(p, json!({"state": "Ready", "message": null, "vpn": {"ready": true, "failure": null}}));
        // Applying it (RFC 7386) gives `new`.
        let mut applied = old.clone();
        json_patch::merge(&mut applied, &p);
        assert_eq!(applied, new);
        assert_eq!(patch(&json!({"a": [1, 2]}), &json!({"a": []})), json!({"a": []}), "arrays are replaced");
    }
}
