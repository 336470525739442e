//! `events.k8s.io/v1` Events, checked as upstream's `ValidateEventCreate`
//! checks Events created through that API (the strict rules; core `v1`
//! Events keep the legacy ones): `eventTime`, `type`, `reportingController`,
//! the lengths of `reportingInstance`, `action`, `reason` and `note`, and a
//! `series` on create and whenever an update changes it.

use super::qualified_name_errors;
use crate::error::FieldError;
use serde_json::Value;

const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

fn text<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get(field).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn validate(obj: &Value, old: Option<&Value>, out: &mut Vec<FieldError>) {
    if let Some(old) = old {
        // An update: only a changed series is checked again.
        if obj.get("series") != old.get("series") {
            series(obj, out);
        }
        return;
    }
    series(obj, out);
    namespace(obj, "regarding", out);
    if obj.get("eventTime").is_none_or(Value::is_null) {
        out.push(FieldError::required("eventTime", ""));
    }
    let kind = text(obj, "type");
    if kind != "Normal" && kind != "Warning" {
        out.push(FieldError::invalid("type", "", format!("has invalid value: {kind}")));
    }
    let controller = text(obj, "reportingController");
    for msg in qualified_name_errors(controller) {
        out.push(FieldError::invalid("reportingController", controller, msg));
    }
    let at_most = |n: usize| format!("can have at most {n} characters");
    if text(obj, "reportingInstance").len() > REPORTING_INSTANCE_MAX {
        out.push(FieldError::invalid("reportingInstance", "", at_most(REPORTING_INSTANCE_MAX)));
    }
    for (field, max) in [("action", ACTION_MAX), ("reason", REASON_MAX)] {
        let v = text(obj, field);
        if v.len() > max {
            out.push(FieldError::invalid(field, "", at_most(max)));
        }
        if v.is_empty() {
            out.push(FieldError::required(field, ""));
        }
    }
    if text(obj, "note").len() > NOTE_MAX {
        out.push(FieldError::invalid("note", "", at_most(NOTE_MAX)));
    }
}

/// Upstream's namespace rule for a new Event of either API (`legacyValidateEvent`,
/// where the regarding object is `involvedObject`, which the error names): an
/// Event with an eventTime about a cluster-scoped object lives in `default` or
/// `kube-system`; one without must be in its object's namespace (or, for a
/// cluster-scoped object, in none or `default`).
pub(super) fn namespace(obj: &Value, involved: &str, out: &mut Vec<FieldError>) {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let of_object = obj.get(involved).and_then(|o| o.get("namespace")).and_then(Value::as_str).unwrap_or("");
    let new_style = obj.get("eventTime").is_some_and(|t| !t.is_null());
    let fine = match (new_style, of_object.is_empty()) {
        (true, true) => ns == "default" || ns == "kube-system",
        (true, false) => true,
        (false, true) => ns.is_empty() || ns == "default",
        (false, false) => ns == of_object,
    };
    if !fine {
        out.push(FieldError::invalid("involvedObject.namespace", of_object, "does not match event.namespace"));
    }
}

fn series(obj: &Value, out: &mut Vec<FieldError>) {
    let Some(s) = obj.get("series").filter(|s| !s.is_null()) else { return };
    if s.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        out.push(FieldError::invalid("series.count", "", "should be at least 2"));
    }
    if s.get("lastObservedTime").is_none_or(Value::is_null) {
        out.push(FieldError::required("series.lastObservedTime", ""));
    }
}
