//! `/v1/tenants`: admins manage tenants; a tenant token sees its own.

use super::{invalid, list_params, visible_tenant};
use crate::auth::{Principal, token_secret};
use crate::model::{NewTenant, Page, Paging, TenantView};
use crate::problem::{Json, Path, Problem, Query, Result, body_of};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use resources::tenant::validate_name;
use resources::{Tenant, TenantSpec};
use serde_json::Value;

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(Paging),
    description = "Admins list every tenant; a tenant token lists only its own.",
    responses((status = 200, body = Page<TenantView>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    Query(p): Query<Paging>,
) -> Result<Json<Page<TenantView>>> {
    let lp = list_params(&p)?;
    let api = Api::<Tenant>::all(s.client.clone());
    let view = |t: &Tenant| {
        let mut v = TenantView::from(t);
        v.usage = s.usage(&v.name);
        v
    };
    let ours = |t: &Tenant| s.settings().in_scope(t.metadata.labels.as_ref());
    if let Principal::Tenant(t) = &who {
        let items = api.get_opt(t).await?.iter().filter(|t| ours(t)).map(view).collect();
        return Ok(Json(Page { items, next: None }));
    }
    let lp = match s.settings().scope_selector() {
        Some(sel) => lp.labels(&sel),
        None => lp,
    };
    let list = api.list(&lp).await?;
    let next = list.metadata.continue_.filter(|c| !c.is_empty());
    Ok(Json(Page { items: list.items.iter().map(view).collect(), next }))
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    description = "Creates a tenant (admins only).",
    responses((status = 201, body = TenantView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<(StatusCode, Json<TenantView>)> {
    who.admin("create tenants")?;
    let body: NewTenant = body_of(&body)?;
    if let Some(p) = validate_name(&body.name, &s.settings().namespace_prefix) {
        return Err(Problem::invalid("name", p.reason));
    }
    // Never a namespace Paddock uses itself or one that is not the new
    // tenant's (the controller checks again, for Tenants made with kubectl).
    let ns = s.namespace(&body.name);
    let existing = Api::<Namespace>::all(s.client.clone()).get_opt(&ns).await?;
    if let Some(p) = controller::tenant::build::namespace_refused(&body.name, s.settings(), existing.as_ref()) {
        return Err(Problem::invalid("name", p.reason));
    }
    let mut problems = body.spec.validate();
    problems.extend(group_problems(&s, &body.spec).await?);
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    let t = new_tenant(&body.name, body.spec, s.settings().scope.as_ref());
    let created =
        Api::<Tenant>::all(s.client.clone()).create(&PostParams::default(), &t).await.map_err(|e| match e {
            kube::Error::Api(a) if a.code == 409 => {
                Problem::conflict("already-exists", format!("tenant {:?} already exists", body.name))
            }
            e => e.into(),
        })?;
    tracing::info!(tenant = %body.name, "tenant created");
    Ok((StatusCode::CREATED, Json(TenantView::from(&created))))
}

/// Groups named in `spec.groups` that exist but are not Groups (as the
/// controller would find; a group that does not exist yet may be created
/// later, and the controller waits for it).
async fn group_problems(s: &AppState, spec: &TenantSpec) -> Result<Vec<resources::FieldProblem>> {
    let mut problems = Vec::new();
    // A name that is no tenant name is reported by `TenantSpec::validate`.
    for (i, g) in spec.groups.iter().enumerate().filter(|(_, g)| resources::is_dns_label(g)) {
        if let Some(t) = s.tenant(g).await?
            && t.spec.kind != resources::tenant::TenantKind::Group
        {
            problems.push(resources::FieldProblem::new(
                format!("spec.groups[{i}]"),
                format!("tenant {g:?} is a {:?}, not a Group", t.spec.kind),
            ));
        }
    }
    Ok(problems)
}

/// A Tenant as the API creates it: with the controller's finalizer already,
/// as instances are, so the controller's first reconcile provisions at once
/// instead of adding the finalizer first (one write and one round trip less).
/// With a scope, it carries the installation's label.
fn new_tenant(name: &str, spec: TenantSpec, scope: Option<&(String, String)>) -> Tenant {
    let mut t = Tenant::new(name, spec);
    t.metadata.finalizers = Some(vec![resources::vocabulary::TENANT_FINALIZER.to_string()]);
    if let Some((k, v)) = scope {
        t.metadata.labels = Some([(k.clone(), v.clone())].into());
    }
    t
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(s): State<AppState>, who: Principal, Path(tenant): Path<String>) -> Result<Json<TenantView>> {
    let mut view = TenantView::from(&*visible_tenant(&s, &who, &tenant).await?);
    view.usage = s.usage(&tenant);
    Ok(Json(view))
}

/// `current` with the merge patch applied, checked as a new spec would be.
/// The first field of `patch` (set to something) that `kept` does not hold.
fn unknown_field(patch: &Value, kept: &Value, at: &str) -> Option<String> {
    let obj = patch.as_object()?;
    for (k, v) in obj {
        let here = format!("{at}.{k}");
        let empty =
            v.is_null() || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|o| o.is_empty());
        match kept.get(k) {
            None if !empty => return Some(here),
            Some(inner) if v.is_object() && inner.is_object() => {
                if let Some(f) = unknown_field(v, inner, &here) {
                    return Some(f);
                }
            }
            _ => {}
        }
    }
    None
}

async fn patched(s: &AppState, current: &TenantSpec, patch: &Value) -> Result<TenantSpec> {
    let mut spec = serde_json::to_value(current).map_err(|e| Problem::internal(e.to_string()))?;
    json_patch::merge(&mut spec, patch);
    let new: TenantSpec = serde_json::from_value(spec)
        .map_err(|e| Problem::invalid("spec", format!("the patched spec does not fit: {e}")))?;
    // A field the spec does not have would be dropped without a word (a
    // patch of `{"spec": {...}}` instead of the spec itself, a typo).
    let kept = serde_json::to_value(&new).map_err(|e| Problem::internal(e.to_string()))?;
    if let Some(field) = unknown_field(patch, &kept, "spec") {
        return Err(Problem::invalid(
            &field,
            format!("{field}: a tenant's spec has no such field (the body is a merge patch of the spec itself)"),
        ));
    }
    let mut problems = new.validate();
    problems.extend(group_problems(s, &new).await?);
    let size = |s: &TenantSpec| quantity::Quantity::parse(&s.storage.size);
    if let (Some(old), Some(now)) = (size(current), size(&new))
        && now < old
    {
        problems.push(resources::FieldProblem::new(
            "spec.storage.size",
            format!("{} is smaller than {}: storage may grow but not shrink", new.storage.size, current.storage.size),
        ));
    }
    if problems.is_empty() { Ok(new) } else { Err(invalid(&problems)) }
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    request_body(content = Object, description = "A JSON merge patch (RFC 7396) of the tenant's spec."),
    description = "Changes a tenant's spec (admins only). Storage may grow but not shrink.",
    responses((status = 200, body = TenantView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn patch(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<Json<TenantView>> {
    let mut current = (*visible_tenant(&s, &who, &tenant).await?).clone();
    who.admin("change tenants")?;
    let patch: Value = body_of(&body)?;
    if !patch.is_object() {
        return Err(Problem::invalid("spec", "the body must be a JSON object (a merge patch of the spec)"));
    }
    let api = Api::<Tenant>::all(s.client.clone());
    // The patch applies to the tenant as it is when it is written: a write in
    // between (the controller's status, say) makes the replace a 409, and the
    // patch is applied again to the tenant read afresh, as the API server's
    // own merge patch would be.
    let mut tries = 0;
    let saved = loop {
        current.spec = patched(&s, &current.spec, &patch).await?;
        current.status = None;
        match api.replace(&tenant, &PostParams::default(), &current).await {
            Ok(saved) => break saved,
            Err(kube::Error::Api(a)) if a.code == 409 && tries < 5 => {
                tries += 1;
                current = api.get_opt(&tenant).await?.ok_or_else(|| Problem::not_found("tenant", &tenant))?;
            }
            Err(kube::Error::Api(a)) if a.code == 409 => {
                return Err(Problem::conflict(
                    "conflict",
                    "the tenant kept changing while patching it; retry the request",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(tenant = %tenant, "tenant changed");
    Ok(Json(TenantView::from(&saved)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    description = "Deletes a tenant, its namespace and everything in it (admins only); its tokens are revoked.",
    responses((status = 202, body = TenantView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
) -> Result<(StatusCode, Json<TenantView>)> {
    let current = visible_tenant(&s, &who, &tenant).await?;
    who.admin("delete tenants")?;
    Api::<Tenant>::all(s.client.clone()).delete(&tenant, &DeleteParams::default()).await?;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), s.creds.namespace());
    if let Err(e) = secrets.delete(&token_secret(&tenant), &DeleteParams::default()).await
        && !matches!(&e, kube::Error::Api(a) if a.code == 404)
    {
        return Err(e.into());
    }
    tracing::info!(tenant = %tenant, "tenant deletion started");
    let mut view = TenantView::from(&*current);
    view.deleting = true;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_tenant_carries_the_controller_finalizer() {
        let spec = serde_json::from_value(serde_json::json!({"kind": "Team"})).unwrap();
        let t = super::new_tenant("a", spec, None);
        assert_eq!(t.metadata.finalizers, Some(vec!["paddock.dev/tenant-cleanup".to_string()]));
    }
}
