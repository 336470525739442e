//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! client-go sends for built-in kinds: kubectl's generator commands (`create
//! namespace`, `create secret generic`, `create configmap`, `run`, `create
//! token`, ...) among them.
//!
//! A body is upstream's envelope: the magic `k8s\0`, then a `runtime.Unknown`
//! carrying the type (apiVersion, kind) and the object's own bytes. The object is
//! decoded with the descriptors of the vendored Kubernetes `.proto` files
//! (`proto/`, compiled by `build.rs`) and turned into the JSON the rest of
//! kubesim reads, as upstream's Go types would serialize it: quantities,
//! int-or-strings, times and durations in their JSON forms, bytes in base64,
//! and the empty strings that protobuf always carries for Go's plain string
//! fields left out (`omitempty`).
//!
//! Custom resources have no protobuf form: a protobuf body for one is refused
//! with upstream's 415.

use crate::error::ApiError;
use crate::registry::ResourceDef;
use base64::Engine;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, ReflectMessage, Value as Field};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// The media type of a protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: [u8; 4] = *b"k8s\0";
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"));

/// Strings whose Go field is a pointer and whose empty value means something
/// other than "not set" (a claim's `storageClassName: ""` asks for no class).
/// Protobuf cannot tell the two apart without the Go types, so these keep "".
const MEANINGFUL_EMPTY: &[(&str, &str)] = &[
    ("k8s.io.api.core.v1.PersistentVolumeClaimSpec", "storageClassName"),
    ("k8s.io.api.core.v1.PersistentVolumeClaimSpec", "volumeAttributesClassName"),
];

fn pool() -> Result<&'static DescriptorPool, ApiError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::internal(format!("kubesim's protobuf descriptors do not load: {e}")))
}

/// Whether a request's Content-Type is protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim() == MEDIA_TYPE)
}

/// Decodes a protobuf body sent to `def` at `version` into the object's JSON.
/// `default_kind` is the (apiVersion, kind) the endpoint takes when the envelope
/// names none, as upstream's decoder defaults it.
pub fn decode(def: &ResourceDef, default_kind: (&str, &str), body: &[u8]) -> Result<Value, ApiError> {
    if def.crd.is_some() {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; {MEDIA_TYPE} is served for built-in kinds only"
            ),
        ));
    }
    let pool = pool()?;
    let Some(rest) = body.strip_prefix(&MAGIC) else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (provided data does not appear to be a protobuf message, expected prefix {:?})",
            MAGIC
        )));
    };
    let unknown_desc = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ApiError::internal("kubesim's protobuf descriptors lack runtime.Unknown"))?;
    let unknown = DynamicMessage::decode(unknown_desc, rest)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized (runtime.Unknown: {e})")))?;
    let type_meta = unknown.get_field_by_name("typeMeta");
    let text = |m: Option<&Field>, f: &str| {
        m.and_then(Field::as_message)
            .and_then(|m| m.get_field_by_name(f))
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|s| !s.is_empty())
    };
    let api_version = text(type_meta.as_deref(), "apiVersion").unwrap_or_else(|| default_kind.0.to_string());
    let kind = text(type_meta.as_deref(), "kind").unwrap_or_else(|| default_kind.1.to_string());
    if let Some(enc) = unknown.get_field_by_name("contentEncoding").and_then(|v| v.as_str().map(str::to_string))
        && !enc.is_empty()
    {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {api_version:?} cannot be handled as a {}: content encoding {enc:?} is not supported",
            default_kind.1
        )));
    }
    let raw = unknown.get_field_by_name("raw").and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
    let name = message_name(&api_version, &kind);
    let desc = pool.get_message_by_name(&name).ok_or_else(|| {
        let version = api_version.rsplit('/').next().unwrap_or(&api_version);
        ApiError::bad_request(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme (version {version})"
        ))
    })?;
    let message = DynamicMessage::decode(desc, raw.as_ref()).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version {api_version:?} cannot be handled as a {}: {e}",
            default_kind.1
        ))
    })?;
    let mut obj = match to_json(&message) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

/// `k8s.io.api.<group's first label, core for "">.<version>.<Kind>`.
fn message_name(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = if group.is_empty() { "core" } else { group.split('.').next().unwrap_or(group) };
    format!("k8s.io.api.{package}.{version}.{kind}")
}

fn to_json(m: &DynamicMessage) -> Value {
    let desc = m.descriptor();
    if let Some(v) = well_known(desc.full_name(), m) {
        return v;
    }
    let mut out = Map::new();
    for (field, value) in m.fields() {
        let name = field.name();
        if let Field::String(s) = value
            && s.is_empty()
            && !MEANINGFUL_EMPTY.contains(&(desc.full_name(), name))
        {
            continue;
        }
        let v = match value {
            Field::List(items) if items.is_empty() => continue,
            Field::Map(map) if map.is_empty() => continue,
            other => scalar(other),
        };
        // A zero Time is an empty message: Go's JSON writes null, omitted here.
        if v.is_null() && matches!(field.kind(), Kind::Message(_)) {
            continue;
        }
        out.insert(name.to_string(), v);
    }
    Value::Object(out)
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

fn scalar(v: &Field) -> Value {
    match v {
        Field::Bool(b) => json!(b),
        Field::I32(n) => json!(n),
        Field::I64(n) => json!(n),
        Field::U32(n) => json!(n),
        Field::U64(n) => json!(n),
        Field::F32(n) => json!(n),
        Field::F64(n) => json!(n),
        Field::String(s) => json!(s),
        Field::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Field::EnumNumber(n) => json!(n),
        Field::Message(m) => to_json(m),
        Field::List(items) => Value::Array(items.iter().map(scalar).collect()),
        Field::Map(map) => Value::Object(map.iter().map(|(k, v)| (map_key(k), scalar(v))).collect()),
    }
}

/// The types whose JSON form is not their fields: upstream's custom marshallers.
fn well_known(full_name: &str, m: &DynamicMessage) -> Option<Value> {
    let int = |f: &str| m.get_field_by_name(f).and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)));
    let text = |f: &str| m.get_field_by_name(f).and_then(|v| v.as_str().map(str::to_string));
    let bytes = |f: &str| m.get_field_by_name(f).and_then(|v| v.as_bytes().cloned());
    let has_any = m.fields().next().is_some();
    Some(match full_name {
        "k8s.io.apimachinery.pkg.api.resource.Quantity" | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => {
            json!(text("string").unwrap_or_default())
        }
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => match int("type") {
            Some(1) => json!(text("strVal").unwrap_or_default()),
            _ => json!(int("intVal").unwrap_or(0)),
        },
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" | "k8s.io.apimachinery.pkg.apis.meta.v1.Timestamp" => {
            if !has_any {
                return Some(Value::Null);
            }
            timestamp(int("seconds").unwrap_or(0), 0, false)
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => {
            if !has_any {
                return Some(Value::Null);
            }
            timestamp(int("seconds").unwrap_or(0), int("nanos").unwrap_or(0), true)
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => json!(go_duration(int("duration").unwrap_or(0))),
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" | "k8s.io.apimachinery.pkg.runtime.RawExtension" => {
            let raw = bytes(if full_name.ends_with("FieldsV1") { "Raw" } else { "raw" }).unwrap_or_default();
            if raw.is_empty() {
                return Some(Value::Null);
            }
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        }
        _ => return None,
    })
}

/// RFC 3339 in UTC, to the second (`Time`) or the microsecond (`MicroTime`).
fn timestamp(seconds: i64, nanos: i64, micro: bool) -> Value {
    let Ok(ts) = jiff::Timestamp::new(seconds, i32::try_from(nanos).unwrap_or(0)) else {
        return Value::Null;
    };
    let format = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    json!(ts.strftime(format).to_string())
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let frac = |value: u64, unit: u64| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let secs = n / 1_000_000_000;
    let sub = n % 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let seconds = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn message_names_follow_the_group() {
        assert_eq!(message_name("v1", "Namespace"), "k8s.io.api.core.v1.Namespace");
        assert_eq!(message_name("rbac.authorization.k8s.io/v1", "Role"), "k8s.io.api.rbac.v1.Role");
        assert_eq!(message_name("apps/v1", "Deployment"), "k8s.io.api.apps.v1.Deployment");
    }
}
