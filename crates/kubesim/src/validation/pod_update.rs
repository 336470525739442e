//! What a pod update may change, as upstream's `ValidatePodUpdate` says:
//! images, `activeDeadlineSeconds` (set once, then only lowered), added
//! tolerations (existing ones only in their `tolerationSeconds`) and
//! `terminationGracePeriodSeconds`; the binding sets `nodeName` once.

use crate::error::FieldError;
use serde_json::Value;

pub(super) fn validate(obj: &Value, old: &Value, out: &mut Vec<FieldError>) {
    if let Some(e) = active_deadline(obj, old) {
        out.push(e);
        return;
    }
    if !only_added_tolerations(obj, old) {
        out.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
        return;
    }
    // Everything else must stay as it was.
    let strip = |v: &Value| {
        let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("terminationGracePeriodSeconds");
            // The binding sets nodeName once.
            if old.pointer("/spec/nodeName").is_none() {
                m.remove("nodeName");
            }
        }
        s
    };
    let mut a = strip(obj);
    let mut b = strip(old);
    if old.pointer("/spec/nodeName").is_none()
        && let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object_mut())
    {
        a.remove("nodeName");
        b.remove("nodeName");
    }
    if a != b {
        out.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

const FIELD: &str = "spec.activeDeadlineSeconds";

/// `activeDeadlineSeconds` may be set when it was not, or lowered; never
/// raised or removed.
fn active_deadline(obj: &Value, old: &Value) -> Option<FieldError> {
    let before = old.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64);
    match obj.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64) {
        Some(n) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            Some(FieldError::invalid_raw(FIELD, n, "must be between 0 and 2147483647, inclusive"))
        }
        Some(n) if before.is_some_and(|b| b < n) => {
            Some(FieldError::invalid_raw(FIELD, n, "must be less than or equal to previous value"))
        }
        None if before.is_some() => {
            Some(FieldError::invalid_raw(FIELD, "null", "must not update from a positive integer to nil value"))
        }
        _ => None,
    }
}

/// Every toleration the pod had is still there, changed at most in its
/// `tolerationSeconds`.
fn only_added_tolerations(obj: &Value, old: &Value) -> bool {
    let list = |v: &Value| v.pointer("/spec/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    // As upstream compares its typed tolerations: an empty string is no value.
    let without_seconds = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
            m.retain(|_, v| !(v.is_null() || v.as_str() == Some("")));
        }
        t
    };
    let now: Vec<Value> = list(obj).iter().map(without_seconds).collect();
    list(old).iter().map(without_seconds).all(|t| now.contains(&t))
}
