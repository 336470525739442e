//! `events.k8s.io/v1` Events as a view of core `v1` Events: one store, as
//! upstream's (both APIs serve the same objects, with the same names, uids
//! and resourceVersions), so an Event written through either API is listed,
//! watched and described through both (`kubectl describe`, `kubectl get
//! events` read core Events; controllers write events.k8s.io ones).
//!
//! Objects are stored in the core form and converted field by field on the
//! way in and out (upstream's `k8s.io/kubernetes/pkg/apis/events/v1`
//! conversions).

use crate::registry::ResourceDef;
use serde_json::{Map, Value, json};

/// (events.k8s.io/v1 field, core v1 field); the rest share their names.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `def` is the events.k8s.io view.
pub fn is_view(def: &ResourceDef) -> bool {
    def.is("events.k8s.io", "events")
}

fn rename(v: &Value, api_version: &str, from_v1: bool) -> Value {
    let Some(m) = v.as_object() else { return v.clone() };
    let mut out = Map::with_capacity(m.len());
    for (k, x) in m {
        let name = RENAMED
            .iter()
            .find(|(new, old)| if from_v1 { new == k } else { old == k })
            .map(|(new, old)| if from_v1 { *old } else { *new })
            .unwrap_or(k.as_str());
        out.insert(name.to_string(), x.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// A stored core Event as `events.k8s.io/v1` shows it.
pub fn to_v1(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", false)
}

/// An `events.k8s.io/v1` Event in the stored core form.
pub fn to_core(v1: &Value) -> Value {
    rename(v1, "v1", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_views_round_trip() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "n"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "reportingController": "paddock.dev/controller", "reportingInstance": "p-1", "action": "Reconcile",
            "reason": "Claimed", "regarding": {"kind": "Instance", "name": "web", "namespace": "n"},
            "note": "claimed a warm pod", "type": "Normal", "deprecatedCount": 3});
        let core = to_core(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "claimed a warm pod");
        assert_eq!(core["reportingComponent"], "paddock.dev/controller");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(to_v1(&core), v1);
    }
}
