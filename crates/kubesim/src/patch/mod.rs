//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic
//! merge patch (built-in kinds only, as upstream) and server-side apply.

pub mod fieldmanager;
pub mod listtype;
pub mod strategic;

use crate::error::ApiError;
use crate::registry::ResourceDef;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

pub fn patch_type(def: &ResourceDef, content_type: &str) -> Result<PatchType, ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let t = match ct {
        "application/merge-patch+json" => PatchType::Merge,
        "application/json-patch+json" => PatchType::Json,
        "application/strategic-merge-patch+json" if def.crd.is_none() => PatchType::Strategic,
        "application/apply-patch+yaml" => PatchType::Apply,
        _ => {
            let accepted = if def.crd.is_none() {
                format!("{ACCEPTED}, application/strategic-merge-patch+json")
            } else {
                ACCEPTED.to_string()
            };
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: {accepted}"),
            ));
        }
    };
    Ok(t)
}

/// Parses a JSON or YAML document into a JSON value.
pub fn parse_body(body: &[u8], yaml_ok: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if yaml_ok => serde_yaml_ng::from_slice::<Value>(body)
            .map_err(|ye| ApiError::bad_request(format!("error decoding YAML: {ye} (as JSON: {e})"))),
        Err(e) => Err(ApiError::bad_request(format!("the object provided is unrecognized (invalid JSON: {e})"))),
    }
}

/// Applies a non-apply patch to the current object.
pub fn apply_patch(
    def: &ResourceDef,
    version: &str,
    current: &Value,
    pt: PatchType,
    body: &[u8],
) -> Result<Value, ApiError> {
    let patch = parse_body(body, false)?;
    match pt {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("json merge patch must be a JSON object"));
            }
            let mut out = current.clone();
            json_patch::merge(&mut out, &patch);
            Ok(out)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: invalid JSON patch: {e}"
                ))
            })?;
            let mut out = current.clone();
            // Ops apply one by one; like upstream (evanphx/json-patch), a `test`
            // of `null` succeeds on a missing field (kube's finalizer helper relies on it).
            for (i, op) in ops.0.into_iter().enumerate() {
                if let json_patch::PatchOperation::Test(t) = &op
                    && t.value.is_null()
                    && out.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut out, &json_patch::Patch(vec![op])).map_err(|e| {
                    let e = e.to_string().replacen("operation '/0'", &format!("operation '/{i}'"), 1);
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    )
                })?;
            }
            Ok(out)
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("strategic merge patch must be a JSON object"));
            }
            strategic::apply(def, version, current, &patch).map_err(ApiError::bad_request)
        }
        PatchType::Apply => Err(ApiError::internal("apply patches are handled by the field manager")),
    }
}
