//! `/v1/templates`: everyone with a token reads; admins write.

use super::{invalid, list_params, named};
use crate::auth::Principal;
use crate::model::{NewTemplate, Page, Paging, TemplateView};
use crate::problem::{Json, Path, Problem, Query, Result, body_of};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use resources::{Template, TemplateSpec};

#[utoipa::path(get, path = "/v1/templates", tag = "templates", params(Paging),
    responses((status = 200, body = Page<TemplateView>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    _who: Principal,
    Query(p): Query<Paging>,
) -> Result<Json<Page<TemplateView>>> {
    let lp = list_params(&p)?;
    let lp = match s.settings().scope_selector() {
        Some(sel) => lp.labels(&sel),
        None => lp,
    };
    let list = Api::<Template>::all(s.client.clone()).list(&lp).await?;
    let next = list.metadata.continue_.filter(|c| !c.is_empty());
    Ok(Json(Page { items: list.items.iter().map(TemplateView::from).collect(), next }))
}

#[utoipa::path(get, path = "/v1/templates/{template}", tag = "templates", params(("template" = String, Path)),
    responses((status = 200, body = TemplateView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(s): State<AppState>, _who: Principal, Path(name): Path<String>) -> Result<Json<TemplateView>> {
    named("template", &name)?;
    let t = Api::<Template>::all(s.client.clone()).get_opt(&name).await?;
    let t = t.filter(|t| s.settings().in_scope(t.metadata.labels.as_ref()));
    Ok(Json(TemplateView::from(&t.ok_or_else(|| Problem::not_found("template", &name))?)))
}

/// The template's problems, and what it asks beyond the installation's
/// template policy (the template controller reports the same as not Accepted).
fn check(name: &str, spec: &TemplateSpec, s: &Shared) -> Result<()> {
    if let Some(p) = resources::template::validate_name(name) {
        return Err(Problem::invalid(p.field, p.reason));
    }
    let problems = spec.validate_for(&s.settings().template_policy());
    if problems.is_empty() { Ok(()) } else { Err(invalid(&problems)) }
}

async fn save(s: &Shared, name: &str, spec: TemplateSpec, replace: bool) -> Result<(StatusCode, Json<TemplateView>)> {
    check(name, &spec, s)?;
    let api = Api::<Template>::all(s.client.clone());
    let existing = api.get_opt(name).await?;
    if existing.as_ref().is_some_and(|t| !s.settings().in_scope(t.metadata.labels.as_ref())) {
        return Err(Problem::conflict(
            "already-exists",
            format!("template {name:?} exists, and belongs to another installation of Paddock on this cluster"),
        ));
    }
    let (code, saved) = match existing {
        Some(t) if t.metadata.deletion_timestamp.is_some() => {
            return Err(Problem::conflict(
                "template-deleting",
                format!(
                    "template {name:?} is being deleted (it stays until its last instance stops); \
                     apply it again once it is gone"
                ),
            ));
        }
        Some(mut t) if replace => {
            t.spec = spec;
            t.status = None;
            (StatusCode::OK, api.replace(name, &PostParams::default(), &t).await)
        }
        Some(_) => return Err(Problem::conflict("already-exists", format!("template {name:?} already exists"))),
        None => {
            let mut t = Template::new(name, spec);
            if let Some((k, v)) = &s.settings().scope {
                t.metadata.labels = Some([(k.clone(), v.clone())].into());
            }
            (StatusCode::CREATED, api.create(&PostParams::default(), &t).await)
        }
    };
    let saved = saved.map_err(|e| match e {
        kube::Error::Api(a) if a.code == 409 => {
            Problem::conflict("conflict", format!("template {name:?} changed meanwhile; retry the request"))
        }
        e => e.into(),
    })?;
    tracing::info!(template = %name, "template saved");
    Ok((code, Json(TemplateView::from(&saved))))
}

#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = NewTemplate,
    description = "Creates a template (admins only).",
    responses((status = 201, body = TemplateView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<(StatusCode, Json<TemplateView>)> {
    who.admin("write templates")?;
    let body: NewTemplate = body_of(&body)?;
    let Some(name) = body.name else { return Err(Problem::invalid("name", "a template needs a name")) };
    save(&s, &name, body.spec, false).await
}

#[utoipa::path(put, path = "/v1/templates/{template}", tag = "templates", params(("template" = String, Path)),
    request_body = NewTemplate, description = "Creates or replaces a template (admins only). Running instances keep their pods.",
    responses((status = 200, body = TemplateView), (status = 201, body = TemplateView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn put(
    State(s): State<AppState>,
    who: Principal,
    Path(name): Path<String>,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<(StatusCode, Json<TemplateView>)> {
    who.admin("write templates")?;
    let body: NewTemplate = body_of(&body)?;
    if let Some(n) = body.name.as_deref().filter(|n| *n != name) {
        return Err(Problem::invalid("name", format!("{n:?} does not match the path's {name:?}")));
    }
    save(&s, &name, body.spec, true).await
}

#[utoipa::path(delete, path = "/v1/templates/{template}", tag = "templates", params(("template" = String, Path)),
    description = "Deletes a template (admins only). Its instances keep running, and being repaired, until they stop: \
        the template stays until the last one is gone, refusing new instances (409), and its warm pool drains.",
    responses((status = 202, body = TemplateView, description = "Being deleted: kept while instances use it"),
        (status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn delete(State(s): State<AppState>, who: Principal, Path(name): Path<String>) -> Result<Response> {
    who.admin("delete templates")?;
    named("template", &name)?;
    if s.template(&name).await?.is_none() {
        return Err(Problem::not_found("template", &name));
    }
    match Api::<Template>::all(s.client.clone()).delete(&name, &DeleteParams::default()).await {
        // Held by its finalizer: the template as the deletion left it.
        Ok(answer) => Ok(match answer.left() {
            Some(kept) => (StatusCode::ACCEPTED, Json(TemplateView::from(&kept))).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        }),
        Err(kube::Error::Api(a)) if a.code == 404 => Err(Problem::not_found("template", &name)),
        Err(e) => Err(e.into()),
    }
}
