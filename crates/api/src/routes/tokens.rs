//! `/v1/tenants/{tenant}/tokens`: admins issue and revoke tenant tokens.

use super::visible_tenant;
use crate::auth::{CREDENTIALS_LABEL, IssuedToken, Principal, TokenInfo, mint, token_secret};
use crate::model::NewToken;
use crate::problem::{Json, Path, Problem, Result, optional_body};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

/// Waits until this replica's credentials watch shows the change, so the
/// caller's next request sees it (at most two seconds).
async fn settle(s: &Shared, tenant: &str, id: &str, present: bool) {
    for _ in 0..200 {
        if s.creds.sees(tenant, id, present) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(tenant = %tenant, "the credentials watch has not caught up with a token change after 2s");
}

/// Shortest and longest a token may be issued for.
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(400 * 24 * 3600));

/// A token's `ttl`, checked.
fn token_ttl(ttl: &str) -> Result<Duration> {
    super::ttl_within(ttl, TTL_RANGE, "1m and 400d", "90m, 12h, 30d")
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/tokens", tag = "tokens", params(("tenant" = String, Path)),
    description = "Lists a tenant's tokens (ids and descriptions; never the tokens). Admins only.",
    responses((status = 200, body = Vec<TokenInfo>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<TokenInfo>>> {
    visible_tenant(&s, &who, &tenant).await?;
    who.admin("manage tokens")?;
    Ok(Json(s.creds.list(&tenant)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tokens", params(("tenant" = String, Path)),
    request_body = NewToken,
    description = "Issues a token for the tenant. The token is in this answer only; Paddock keeps a salted hash.",
    responses((status = 201, body = IssuedToken), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn issue(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<(StatusCode, Json<IssuedToken>)> {
    visible_tenant(&s, &who, &tenant).await?;
    who.admin("manage tokens")?;
    let NewToken { description, ttl } = optional_body::<NewToken>(&body)?;
    if description.as_ref().is_some_and(|d| d.len() > 200) {
        return Err(Problem::invalid("description", "may not be longer than 200 characters"));
    }
    let ttl = ttl.as_deref().map(token_ttl).transpose()?;
    let (token, id, stored) = mint(&tenant, description, ttl);
    let value = STANDARD.encode(serde_json::to_vec(&stored).map_err(|e| Problem::internal(e.to_string()))?);
    let api: Api<Secret> = Api::namespaced(s.client.clone(), s.creds.namespace());
    let name = token_secret(&tenant);
    // Expired tokens of the tenant go in the same write.
    let mut data = serde_json::Map::new();
    for expired in s.creds.expired(&tenant) {
        data.insert(expired, serde_json::Value::Null);
    }
    data.insert(id.clone(), value.clone().into());
    let patch = json!({"data": data});
    let added = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
    if let Err(kube::Error::Api(a)) = &added
        && a.code == 404
    {
        let secret = serde_json::from_value::<Secret>(json!({
            "metadata": {"name": name, "labels": {CREDENTIALS_LABEL: "tenant", resources::vocabulary::TENANT: tenant,
                resources::vocabulary::MANAGED_BY: resources::vocabulary::MANAGER}},
            "type": "Opaque", "data": {&id: value}
        }))
        .map_err(|e| Problem::internal(e.to_string()))?;
        api.create(&PostParams::default(), &secret).await.map_err(|e| match e {
            kube::Error::Api(a) if a.code == 404 => Problem::unavailable(format!(
                "the system namespace {:?} does not exist; install Paddock first (paddock manifests)",
                s.creds.namespace()
            )),
            e => e.into(),
        })?;
    } else {
        added?;
    }
    settle(&s, &tenant, &id, true).await;
    tracing::info!(tenant = %tenant, token_id = %id, "token issued");
    Ok((StatusCode::CREATED, Json(IssuedToken { id, tenant, token, created: stored.created, expires: stored.expires })))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{id}", tag = "tokens",
    params(("tenant" = String, Path), ("id" = String, Path)),
    description = "Revokes a token: requests with it fail from now on. Admins only.",
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    visible_tenant(&s, &who, &tenant).await?;
    who.admin("manage tokens")?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Problem::not_found("token", &id));
    }
    let api: Api<Secret> = Api::namespaced(s.client.clone(), s.creds.namespace());
    let name = token_secret(&tenant);
    if !s.creds.sees(&tenant, &id, true) {
        return Err(Problem::not_found("token", &id));
    }
    let patch = json!({"data": {&id: null}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    settle(&s, &tenant, &id, false).await;
    tracing::info!(tenant = %tenant, token_id = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
