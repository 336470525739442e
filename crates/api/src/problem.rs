//! Errors as RFC 9457 `application/problem+json`: a stable `type`, a title, the
//! HTTP status, a `detail` for people and, for bad input, the offending `field`.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Prefix of every problem `type`; the suffix is stable and documented.
pub const TYPE_BASE: &str = "https://paddock.dev/problems/";

/// A problem report (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// Stable identifier, `https://paddock.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault (`spec.quota.cpu`, `ttl`, `Idempotency-Key`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_BASE}{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the body or a parameter cannot be read at all.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }
    /// 401: no token, or one that is not valid.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }
    /// 403: the caller is known and may see the object, but not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }
    /// 404: absent, or not the caller's to see (the same answer on purpose).
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{what} {name:?} does not exist"))
    }
    /// 404 for a path the API does not have.
    pub fn no_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("there is no route {path}"))
    }
    /// 409: the request conflicts with the object's state.
    pub fn conflict(kind: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, "Conflict", detail)
    }
    /// 422: well-formed but invalid; names the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Invalid request", detail).field(field)
    }
    /// 422 of kind `kind` (e.g. `template-invalid`): not the request's
    /// fault but what it names; `field` is the request field that names it.
    pub fn invalid_kind(kind: &str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, "Invalid request", detail).field(field)
    }
    /// 429: the tenant is at a limit; retry later.
    pub fn limit(kind: &str, detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Self::new(StatusCode::TOO_MANY_REQUESTS, kind, "Limit reached", detail);
        p.retry_after = Some(retry_after);
        p
    }
    /// 503: Paddock or the cluster behind it is not answering as it should.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail)
    }
    /// 500: a bug or an unexpected answer from the cluster.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }

    /// A problem with any status (one a file server answered with).
    pub fn of_status(status: u16, kind: &str, detail: impl Into<String>) -> Self {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        Self::new(code, kind, code.canonical_reason().unwrap_or("Error"), detail)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Details made from field problems already say "field: reason"; the
        // field is named once either way.
        match &self.field {
            Some(field) if !field.is_empty() && !self.detail.contains(&format!("{field}:")) => {
                write!(f, "{field}: {}", self.detail)
            }
            _ => f.write_str(&self.detail),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::warn!(status = self.status, detail = %self.detail, "request failed");
        }
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<BytesRejection> for Problem {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(r.status(), "too-large", "Payload too large", format!("the body is over {BODY_LIMIT} bytes"))
        } else {
            Self::bad_request(format!("the body could not be read: {}", r.body_text()))
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(format!("bad query parameters: {}", r.body_text()))
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(format!("bad path parameter: {}", r.body_text()))
    }
}

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Maps errors from the Kubernetes API to problems. Not-found and conflict
/// cases that need the object's name are handled by the callers.
pub fn from_kube(e: kube::Error) -> Problem {
    match e {
        kube::Error::Api(s) => match s.code {
            403 if s.message.contains("exceeded quota") => {
                Problem::limit("quota-exceeded", format!("the tenant's quota does not allow this: {}", s.message), 30)
            }
            404 => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", s.message),
            409 => Problem::conflict("conflict", s.message),
            // A continue token that is malformed or expired.
            400 | 410 => Problem::bad_request(format!("{}; list again from the start", s.message)).field("continue"),
            422 => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Invalid request", s.message),
            429 => Problem::limit("throttled", "the cluster is throttling requests", 1),
            _ => Problem::unavailable(format!("the cluster answered {} {}: {}", s.code, s.reason, s.message)),
        },
        other => Problem::unavailable(format!("the cluster could not be reached: {other}")),
    }
}

impl From<kube::Error> for Problem {
    fn from(e: kube::Error) -> Self {
        from_kube(e)
    }
}

/// JSON answers (request bodies are read with [`body_of`] / [`optional_body`]).
pub use axum::Json;

/// The raw body (parsed with [`body_of`] once access is checked), whose
/// rejections (too large, broken) are problems.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self> {
        axum::body::Bytes::from_request(req, state).await.map(RawBody).map_err(Problem::from)
    }
}

/// `axum::extract::Query` whose rejections are problems.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections are problems.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// A JSON body that may be absent (empty means the defaults).
pub fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body_of(body)
}

/// A JSON body, read after the caller's access was checked (so a request about
/// another tenant is a 404 whatever its body).
pub fn body_of<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request("the request needs a JSON body"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    // Strict, as `kubectl apply` is: a field this API does not know (say
    // `privileged`) is refused, never dropped in silence.
    resources::strict::decode(de).map_err(|refused| match refused {
        resources::strict::Refused::Invalid { error, .. } if error.is_syntax() || error.is_eof() => {
            Problem::bad_request(format!("the body is not valid JSON: {error}"))
        }
        resources::strict::Refused::Invalid { path, error } if path == "." => {
            Problem::invalid("body", format!("the body does not fit: {}", resources::strict::reason(&error)))
        }
        resources::strict::Refused::Invalid { path, error } => Problem::invalid(
            path.clone(),
            format!("the body does not fit: {path}: {}", resources::strict::reason(&error)),
        ),
        resources::strict::Refused::Unknown(fields) => {
            Problem::invalid(fields[0].clone(), format!("unknown field(s): {}; remove them", fields.join(", ")))
        }
    })
}

pub type Result<T, E = Problem> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Problem;

    #[test]
    fn a_problem_names_its_field_once() {
        let p = Problem::invalid("template", "there is no template \"nope\"");
        assert_eq!(p.to_string(), "template: there is no template \"nope\"");
        let p = Problem::invalid("ttl", "ttl: \"5x\" is not a duration");
        assert_eq!(p.to_string(), "ttl: \"5x\" is not a duration");
        let p = Problem::invalid("spec.ttl", "the body does not fit: spec.ttl: invalid type");
        assert_eq!(p.to_string(), "the body does not fit: spec.ttl: invalid type");
        assert_eq!(Problem::bad_request("no JSON").to_string(), "no JSON");
    }
}
