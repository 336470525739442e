//! `POST serviceaccounts/NAME/token` (TokenRequest): a service account token
//! with the claims upstream's issuer puts in it, checked as upstream's
//! `TokenREST.Create` checks the request (body name and namespace, the service
//! account, `spec.expirationSeconds`, the bound object).
//!
//! kubesim authenticates nothing, so the token is not signed with a key
//! anyone could verify: it is a JWT of upstream's shape (header, claims,
//! signature) whose signature is random bytes.

use crate::cluster::{Cluster, now_rfc3339};
use crate::error::{ApiError, FieldError};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const API_VERSION: &str = "authentication.k8s.io/v1";
/// What kubeadm configures as the service-account issuer, and so as the API
/// server's audience (the default of an empty `spec.audiences`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Upstream's `MinTokenAgeSec` and defaulted `expirationSeconds`.
const MIN_SECONDS: i64 = 600;
const DEFAULT_SECONDS: i64 = 3600;

/// A core object, or upstream's 404 for it.
fn get(cluster: &Cluster, plural: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
    cluster.get_value("", plural, ns, name).ok_or_else(|| ApiError::not_found("", plural, name))
}

fn invalid(name: &str, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid("authentication.k8s.io", "TokenRequest", name, errs)
}

/// The TokenRequest answered for service account `name` in `ns`.
pub(crate) fn create(cluster: &Cluster, ns: &str, name: &str, mut req: Value) -> Result<Response, ApiError> {
    let Some(m) = req.as_object_mut() else {
        return Err(ApiError::bad_request("the object provided is unrecognized (must be a JSON object)"));
    };
    if let Some(av) = m.get("apiVersion").and_then(Value::as_str)
        && av != API_VERSION
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({API_VERSION})"
        )));
    }
    if let Some(k) = m.get("kind").and_then(Value::as_str)
        && k != "TokenRequest"
    {
        return Err(ApiError::bad_request(format!(
            "{k} in version \"v1\" cannot be handled as a TokenRequest: the kind in the body does not match the endpoint"
        )));
    }
    m.insert("apiVersion".into(), json!(API_VERSION));
    m.insert("kind".into(), json!("TokenRequest"));
    let meta = crate::jsonobj::child_object(&mut req, "metadata");
    for (field, want, what) in [("name", name, "name"), ("namespace", ns, "namespace")] {
        match meta.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(given) if given != want => {
                return Err(invalid(
                    name,
                    vec![FieldError::invalid(
                        format!("metadata.{field}"),
                        given,
                        format!("must match the service account {what} if specified"),
                    )],
                ));
            }
            _ => {
                meta.insert(field.into(), json!(want));
            }
        }
    }
    let sa = get(cluster, "serviceaccounts", ns, name)?;
    let now = jiff::Timestamp::now();
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));

    let spec = crate::jsonobj::child_object(&mut req, "spec");
    if spec.get("audiences").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert("audiences".into(), json!([ISSUER]));
    }
    let seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.expirationSeconds: {v} is not an integer"
            ))
        })?,
    };
    spec.insert("expirationSeconds".into(), json!(seconds));
    if seconds < MIN_SECONDS {
        return Err(invalid(
            "",
            vec![FieldError::invalid_raw(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if seconds > 1 << 32 {
        return Err(invalid(
            "",
            vec![FieldError::invalid_raw(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let bound = bound_object(cluster, ns, name, spec.get("boundObjectRef"))?;
    let audiences = spec.get("audiences").cloned().unwrap_or(Value::Null);

    let exp = now.as_second() + seconds;
    let mut kubernetes = json!({"namespace": ns,
        "serviceaccount": {"name": name, "uid": sa.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)}});
    if let Some((kind, name, uid)) = bound {
        kubernetes[kind] = json!({"name": name, "uid": uid});
    }
    let claims = json!({"aud": audiences, "exp": exp, "iat": now.as_second(), "nbf": now.as_second(),
        "iss": ISSUER, "jti": uuid::Uuid::new_v4().to_string(), "kubernetes.io": kubernetes,
        "sub": format!("system:serviceaccount:{ns}:{name}")});
    let expires = jiff::Timestamp::from_second(exp).map_err(ApiError::internal)?;
    req["status"] =
        json!({"token": jwt(&claims), "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()});
    Ok(super::json_response(StatusCode::CREATED, serde_json::to_vec(&req).unwrap_or_default()))
}

/// The object a token is bound to (`spec.boundObjectRef`): a Pod running as
/// the service account, a Secret, or a Node, checked as upstream checks it.
fn bound_object(
    cluster: &Cluster,
    ns: &str,
    sa: &str,
    r: Option<&Value>,
) -> Result<Option<(&'static str, String, Value)>, ApiError> {
    let Some(r) = r.filter(|r| !r.is_null()) else { return Ok(None) };
    let (api_version, kind) = (r["apiVersion"].as_str().unwrap_or(""), r["kind"].as_str().unwrap_or(""));
    let name = r["name"].as_str().unwrap_or("").to_string();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let (claim, obj) = match (group, kind) {
        ("", "Pod") => {
            let pod = get(cluster, "pods", ns, &name)?;
            if pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default") != sa {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa:?} to pod running with different serviceaccount name."
                )));
            }
            ("pod", pod)
        }
        ("", "Secret") => ("secret", get(cluster, "secrets", ns, &name)?),
        ("", "Node") => ("node", get(cluster, "nodes", "", &name)?),
        _ => {
            let gvk = if group.is_empty() {
                format!("/{}, Kind={kind}", api_version)
            } else {
                format!("{api_version}, Kind={kind}")
            };
            return Err(ApiError::bad_request(format!("cannot bind token to object of type {gvk}")));
        }
    };
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    if let Some(want) = r["uid"].as_str().filter(|u| !u.is_empty())
        && uid.as_str() != Some(want)
    {
        return Err(ApiError::conflict(
            "",
            kind,
            &name,
            &format!(
                "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(Some((claim, name, uid)))
}

/// A JWT of upstream's shape; the signature is random (nothing verifies it).
fn jwt(claims: &Value) -> String {
    use rand::RngCore;
    let header = json!({"alg": "RS256", "kid": "kubesim"});
    let mut signature = [0u8; 256];
    rand::rng().fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}
