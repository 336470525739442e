//! How a read's objects are written out: at the version asked for (the
//! CRD "None" conversion, the events.k8s.io view), whole or as
//! PartialObjectMetadata. Shared by reads, writes and watches.

use crate::eventview;
use crate::registry::ResourceDef;
use crate::store::Obj;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

/// Renders a stored object at the requested version (the CRD "None" conversion).
pub(crate) fn render_obj(def: &ResourceDef, version: &str, o: &Obj) -> Vec<u8> {
    if eventview::is_view(def) {
        return serde_json::to_vec(&eventview::to_v1(&o.value())).unwrap_or_default();
    }
    if version == def.storage_version() {
        return o.raw.to_vec();
    }
    let mut v = o.value();
    v["apiVersion"] = json!(def.api_version(version));
    serde_json::to_vec(&v).unwrap_or_default()
}

/// How a read answers: whole objects, or only their metadata (the client's
/// Accept asked `as=PartialObjectMetadata` / `as=PartialObjectMetadataList`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Whole,
    Metadata,
}

impl Shape {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let first = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).and_then(|a| a.split(',').next());
        if first.is_some_and(|f| f.contains("as=PartialObjectMetadata")) { Shape::Metadata } else { Shape::Whole }
    }

    /// An object as this shape shows it.
    pub(crate) fn render(self, def: &ResourceDef, version: &str, o: &Obj) -> Vec<u8> {
        match self {
            Shape::Whole => render_obj(def, version, o),
            Shape::Metadata => Shape::metadata_of(o.value()),
        }
    }

    /// A PartialObjectMetadata of an object's value.
    pub(crate) fn metadata_of(mut v: Value) -> Vec<u8> {
        let meta = v.get_mut("metadata").map(Value::take).unwrap_or_else(|| json!({}));
        serde_json::to_vec(&json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}))
            .unwrap_or_default()
    }
}

pub(crate) fn render_value(def: &ResourceDef, version: &str, mut v: Value) -> Vec<u8> {
    if eventview::is_view(def) {
        return serde_json::to_vec(&eventview::to_v1(&v)).unwrap_or_default();
    }
    if version != def.storage_version() {
        v["apiVersion"] = json!(def.api_version(version));
    }
    serde_json::to_vec(&v).unwrap_or_default()
}
