//! `/v1/tenants/{tenant}/instances`: start, look at, renew and stop instances.

use super::{invalid, list_params, visible_instance, visible_tenant};
use crate::auth::Principal;
use crate::model::{InstanceFilter, InstanceView, Page, Paging, Renew, StartInstance};
use crate::problem::{Json, Path, Problem, Query, Result, body_of, optional_body};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use resources::template::parse_duration;
use resources::vocabulary::IDEMPOTENCY_KEY;
use resources::{Instance, InstanceSpec, Template, is_dns_label};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Longest instance name (pod names are `<instance>-<pod>`).
const MAX_NAME: usize = 40;

fn api(s: &Shared, tenant: &str) -> Api<Instance> {
    Api::namespaced(s.client.clone(), &s.namespace(tenant))
}

/// The list parameters with the label filter (the API server checks the selector's syntax).
fn filtered(lp: ListParams, f: &InstanceFilter) -> Result<ListParams> {
    match f.label_selector.as_deref().filter(|sel| !sel.is_empty()) {
        None => Ok(lp),
        Some(sel) if sel.len() > 1024 => {
            Err(Problem::bad_request("the selector may be at most 1024 characters").field("labelSelector"))
        }
        Some(sel) => Ok(lp.labels(sel)),
    }
}

/// A list's refusal: a selector the API server cannot parse is named as such.
fn list_error(e: kube::Error, f: &InstanceFilter) -> Problem {
    match &e {
        kube::Error::Api(st) if st.code == 400 && f.label_selector.is_some() && !st.message.contains("continue") => {
            Problem::bad_request(format!("not a label selector: {}", st.message)).field("labelSelector")
        }
        _ => e.into(),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/instances", tag = "instances",
    params(("tenant" = String, Path), Paging, InstanceFilter),
    responses((status = 200, body = Page<InstanceView>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(p): Query<Paging>,
    Query(f): Query<InstanceFilter>,
) -> Result<Json<Page<InstanceView>>> {
    let lp = filtered(list_params(&p)?, &f)?;
    visible_tenant(&s, &who, &tenant).await?;
    let list = api(&s, &tenant).list(&lp).await.map_err(|e| list_error(e, &f))?;
    let next = list.metadata.continue_.filter(|c| !c.is_empty());
    Ok(Json(Page { items: list.items.iter().map(|i| InstanceView::new(i, &tenant)).collect(), next }))
}

#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(Paging, InstanceFilter),
    description = "Every tenant's instances (admins only), paged. Instances in namespaces that are not a tenant's \
        are left out, so a page may hold fewer than `limit`.",
    responses((status = 200, body = Page<InstanceView>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn list_all(
    State(s): State<AppState>,
    who: Principal,
    Query(p): Query<Paging>,
    Query(f): Query<InstanceFilter>,
) -> Result<Json<Page<InstanceView>>> {
    who.admin("list every tenant's instances")?;
    let lp = filtered(list_params(&p)?, &f)?;
    let list = Api::<Instance>::all(s.client.clone()).list(&lp).await.map_err(|e| list_error(e, &f))?;
    let next = list.metadata.continue_.filter(|c| !c.is_empty());
    let items = list
        .items
        .iter()
        .filter_map(|i| s.tenant_of(i.metadata.namespace.as_deref()?).map(|t| InstanceView::new(i, &t)))
        .collect();
    Ok(Json(Page { items, next }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/instances/{instance}", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<InstanceView>> {
    Ok(Json(InstanceView::new(&visible_instance(&s, &who, &tenant, &name).await?, &tenant)))
}

/// The name an Idempotency-Key maps to: the same key always names the same instance.
fn keyed_name(template: &str, tenant: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\n{key}").as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let stem: String = template.chars().take(MAX_NAME - hex.len() - 1).collect();
    format!("{}-{hex}", stem.trim_end_matches('-'))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key =
        v.to_str().map_err(|_| Problem::bad_request("the key must be printable ASCII").field("Idempotency-Key"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(Problem::bad_request("the key must have 1 to 255 characters").field("Idempotency-Key"));
    }
    Ok(Some(key.to_string()))
}

fn created(view: InstanceView, code: StatusCode, replayed: bool) -> Response {
    let location = format!("/v1/tenants/{}/instances/{}", view.tenant, view.name);
    let mut r = (code, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/instances", tag = "instances",
    params(("tenant" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key start one instance, not two.")),
    request_body = StartInstance,
    description = "Starts an instance of a template. Watch its progress on the tenant's event stream.",
    responses((status = 201, body = InstanceView, description = "Started"),
        (status = 200, body = InstanceView, description = "Already started with this Idempotency-Key"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "The tenant is at a limit; see Retry-After")))]
pub async fn start(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<Response> {
    let t = visible_tenant(&s, &who, &tenant).await?;
    let key = idempotency_key(&headers)?;
    let body: StartInstance = body_of(&body)?;
    super::may_start(&t, &tenant)?;
    if !super::object_name(&body.template) {
        return Err(Problem::invalid("template", format!("there is no template {:?}", body.template)));
    }
    let tpl = s
        .template(&body.template)
        .await?
        .ok_or_else(|| Problem::invalid("template", format!("there is no template {:?}", body.template)))?;
    let mut inst = admit(&t, &tpl, &tenant, &body, key.as_deref(), s.settings())?;
    let api = api(&s, &tenant);
    let ns = s.namespace(&tenant);
    // Retries with one key that arrive together run one after the other here.
    let _held = match &key {
        Some(k) => Some(s.keyed_starts.lock(&format!("{ns}\n{k}")).await),
        None => None,
    };
    let name = inst.metadata.name.clone();
    // An Idempotency-Key retry answers with what the first request started.
    if let (Some(k), Some(n)) = (&key, &name)
        && let Some(existing) = api.get_opt(n).await?
    {
        return replay(existing, k, &body, &tenant);
    }
    within_limits(&s, &t, &tpl, &tenant, key.as_deref(), name.as_deref())?;
    inst.metadata.namespace = Some(ns);
    let outcome = api.create(&PostParams::default(), &inst).await;
    created_or_replayed(&s, &api, outcome, &tenant, &body, key.as_deref(), name.as_deref()).await
}

/// The Instance a start request asks for, checked against its template and
/// the tenant's whole quota by the rules the controller applies too
/// (`resources::admission`, `resources::usage`): pure, no cluster read.
/// Named after the request's name, else after its Idempotency-Key (so
/// retries find it), else by the API server (`generateName`).
fn admit(
    t: &resources::Tenant,
    tpl: &Template,
    tenant: &str,
    body: &StartInstance,
    key: Option<&str>,
    settings: &controller::config::Settings,
) -> Result<Instance> {
    resources::admission::not_deleting(tpl).map_err(|r| Problem::conflict("template-deleting", r.to_string()))?;
    // A template that is not Accepted starts nothing: its problems, said now.
    let broken = resources::admission::template_problems(tpl, &settings.template_policy());
    if !broken.is_empty() {
        let list = broken.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
        return Err(Problem::invalid_kind(
            "template-invalid",
            "template",
            format!("template {:?} is not Accepted, so it starts no instance: {list}", body.template),
        ));
    }
    if let Some(n) = &body.name
        && (!is_dns_label(n) || n.len() > MAX_NAME)
    {
        return Err(Problem::invalid(
            "name",
            format!("{n:?} must be a DNS label (lowercase letters, digits, '-') of at most {MAX_NAME} characters"),
        ));
    }
    let name = match (key, &body.name) {
        (_, Some(n)) => Some(n.clone()),
        (Some(k), None) => Some(keyed_name(&body.template, tenant, k)),
        (None, None) => None,
    };
    let mut inst = Instance::new(
        name.as_deref().unwrap_or_default(),
        InstanceSpec { template: body.template.clone(), ttl: body.ttl.clone(), env: body.env.clone(), suspend: false },
    );
    let mut problems = resources::labels::problems("labels", &body.labels);
    problems.extend(resources::admission::instance_problems(tpl, &inst, settings.max_instance_ttl).into_iter().map(
        |p| {
            let field = p.field.trim_start_matches("spec.");
            resources::FieldProblem::new(if field == "metadata.name" { "name" } else { field }.to_string(), p.reason)
        },
    ));
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    // An instance that needs more than the tenant's whole quota would wait
    // for ever: refused, unlike one that only has to wait for others to stop.
    let who = format!("{:?}", body.template);
    if let Some(why) = resources::usage::beyond(t, resources::usage::template_floor(&tpl.spec), &who) {
        return Err(Problem::invalid("template", why));
    }
    if !body.labels.is_empty() {
        inst.metadata.labels = Some(body.labels.clone());
    }
    if name.is_none() {
        inst.metadata.name = None;
        let stem: String = body.template.chars().take(MAX_NAME - 6).collect();
        inst.metadata.generate_name = Some(format!("{}-", stem.trim_end_matches('-')));
    }
    let requested = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let mut notes = std::collections::BTreeMap::new();
    if let Ok(serde_json::Value::String(t)) = serde_json::to_value(&requested) {
        notes.insert(resources::instance::REQUESTED_AT.to_string(), t);
    }
    if let Some(k) = key {
        notes.insert(IDEMPOTENCY_KEY.to_string(), k.to_string());
    }
    inst.metadata.annotations = Some(notes);
    // Created with the controller's finalizer, so its first reconcile can claim
    // or start at once instead of adding it first (one write and one round
    // trip less on the way to Running).
    inst.metadata.finalizers = Some(vec![resources::vocabulary::INSTANCE_FINALIZER.to_string()]);
    Ok(inst)
}

/// The limits that count the tenant's instances, from the shared watch
/// (the controller and the cluster's ResourceQuota enforce them again,
/// authoritatively): a key already used for another request, the
/// template's per-tenant limit, and the tenant's instance quota, said in
/// its own terms.
fn within_limits(
    s: &Shared,
    t: &resources::Tenant,
    tpl: &Template,
    tenant: &str,
    key: Option<&str>,
    name: Option<&str>,
) -> Result<()> {
    let ns = s.namespace(tenant);
    // The same key for another template or name is another request (the
    // instance name, which carries the key, differs): refused, not a second
    // instance. A reuse at the very same moment as the first may pass.
    if let Some(k) = key
        && let Some(other) = s.hub.keyed(&ns, k)
        && name != Some(other.as_str())
    {
        return Err(Problem::invalid(
            "Idempotency-Key",
            format!(
                "this key already started instance {other:?} with another request; use a new key for a new instance"
            ),
        ));
    }
    resources::admission::within_limit(tpl, s.hub.count(&ns, &tpl.name_any()))
        .map_err(|r| Problem::limit("instance-limit", format!("{r}; stop one first"), 30))?;
    if let Some(max) = t.spec.quota.instances {
        let (all, stopping) = s.hub.count_in(&ns);
        if all >= max as usize {
            let note = if stopping > 0 { format!(", {stopping} of them still stopping") } else { String::new() };
            return Err(Problem::limit(
                "quota-exceeded",
                format!(
                    "tenant {tenant:?} has {all} instance(s){note}, and its quota (spec.quota.instances) allows {max}; \
                     stop one first"
                ),
                30,
            ));
        }
    }
    Ok(())
}

/// The answer to a create: the new instance, or (retries with one key that
/// raced) the instance the winner started.
async fn created_or_replayed(
    s: &Shared,
    api: &Api<Instance>,
    outcome: std::result::Result<Instance, kube::Error>,
    tenant: &str,
    body: &StartInstance,
    key: Option<&str>,
    name: Option<&str>,
) -> Result<Response> {
    match outcome {
        Ok(c) => {
            s.hub.created(&c);
            tracing::info!(tenant = %tenant, instance = %c.name_any(), template = %body.template, "instance started");
            Ok(created(InstanceView::new(&c, tenant), StatusCode::CREATED, false))
        }
        Err(kube::Error::Api(a)) if a.code == 409 => match (key, name) {
            // Two retries raced: the loser answers with the winner's instance.
            (Some(k), Some(n)) => replay(api.get(n).await?, k, body, tenant),
            _ => Err(Problem::conflict(
                "already-exists",
                format!("instance {:?} already exists", name.unwrap_or_default()),
            )),
        },
        // Retries that raced on another replica: a real API server charges the
        // quota before it finds the name taken, so a loser may be refused by a
        // quota the winner just filled. The winner's instance is the answer.
        Err(kube::Error::Api(a)) if a.code == 403 && key.is_some() => match (key, name) {
            (Some(k), Some(n)) => match api.get_opt(n).await? {
                Some(existing) => replay(existing, k, body, tenant),
                None => Err(kube::Error::Api(a).into()),
            },
            _ => Err(kube::Error::Api(a).into()),
        },
        // A tenant still being set up: its namespace is not there yet (the
        // API server's NotFound names the namespace; a missing CRD is another 404).
        Err(kube::Error::Api(a)) if a.code == 404 && a.details.as_ref().is_some_and(|d| d.kind == "namespaces") => {
            let mut p = Problem::conflict(
                "tenant-provisioning",
                format!(
                    "tenant {tenant:?} is still being set up (its namespace {} does not exist yet); retry in a moment",
                    s.namespace(tenant)
                ),
            );
            p.retry_after = Some(1);
            Err(p)
        }
        Err(e) => Err(e.into()),
    }
}

fn replay(existing: Instance, key: &str, body: &StartInstance, tenant: &str) -> Result<Response> {
    let same_key = existing.annotations().get(IDEMPOTENCY_KEY).map(String::as_str) == Some(key);
    if !same_key {
        return Err(Problem::conflict("already-exists", format!("instance {:?} already exists", existing.name_any())));
    }
    let labels = resources::labels::of_user(existing.metadata.labels.as_ref().unwrap_or(&Default::default()));
    if existing.spec.template != body.template
        || existing.spec.env != body.env
        || existing.spec.ttl != body.ttl
        || labels != body.labels
    {
        return Err(Problem::invalid(
            "Idempotency-Key",
            "this key was already used for a different request; use a new key for a new instance",
        ));
    }
    Ok(created(InstanceView::new(&existing, tenant), StatusCode::OK, true))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/instances/{instance}/renew", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)), request_body = Renew,
    description = "Extends the instance's lifetime to now + ttl (default: the template's ttl), up to the template's maxTtl since the instance was created. A renewal never shortens a lifetime: an instance that already lives longer (or does not expire) is answered as it is. A renewal works on a suspended instance too, and resumes it when its template says `idle.resumeOnUse`.",
    responses((status = 200, body = InstanceView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "Resuming it on use: the quota has no room")))]
pub async fn renew(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<Json<InstanceView>> {
    let mut inst = visible_instance(&s, &who, &tenant, &name).await?;
    let body: Renew = optional_body(&body)?;
    // Any renewal is refused above the longest duration there is; the
    // template's bound applies below, once the template is read.
    let asked = match body.ttl.as_deref() {
        None => None,
        Some(t) => Some(
            resources::duration::within("ttl", t, resources::duration::LONGEST, &resources::duration::longest_bound())
                .map_err(|p| Problem::invalid(p.field, p.reason))?,
        ),
    };
    // The write is guarded by the resourceVersion read: two renewals at once
    // must not leave the shorter one's lifetime. A conflict reads again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let lifetime = match renewed(&s, &inst, &name, asked).await? {
            Renewed::Keep(lifetime) => {
                // Answered as it is, with the expiry its lifetime gives.
                let inst = super::activity::resume_on_use(&s, &tenant, inst).await?;
                return Ok(Json(view_with_expiry(&inst, &tenant, lifetime)));
            }
            // Whole seconds, as the ttl is written and the controller reads it.
            Renewed::To(lifetime) => Duration::from_secs(lifetime.as_secs().max(1)),
        };
        let ttl = format!("{}s", lifetime.as_secs());
        let patch = json!({"metadata": {"resourceVersion": inst.metadata.resource_version}, "spec": {"ttl": ttl}});
        match api(&s, &tenant).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(saved) => {
                tracing::info!(tenant = %tenant, instance = %name, ttl = %ttl, "instance renewed");
                let saved = super::activity::resume_on_use(&s, &tenant, saved).await?;
                return Ok(Json(view_with_expiry(&saved, &tenant, Some(lifetime))));
            }
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 5 => {
                inst = visible_instance(&s, &who, &tenant, &name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a renewal request comes to.
enum Renewed {
    /// The instance stays as it is, living this long since its creation (None: for ever).
    Keep(Option<Duration>),
    /// Its lifetime becomes this.
    To(Duration),
}

/// What a renewal by `asked` (default: the template's ttl) does to `inst`,
/// or why it is refused.
async fn renewed(s: &Shared, inst: &Instance, name: &str, asked: Option<Duration>) -> Result<Renewed> {
    if inst.metadata.deletion_timestamp.is_some() {
        return Err(Problem::conflict("stopping", format!("instance {name:?} is being stopped")));
    }
    if inst.status.as_ref().and_then(|st| st.phase) == Some(resources::InstancePhase::Expired) {
        return Err(Problem::conflict("expired", format!("instance {name:?} has expired; start a new one")));
    }
    let tpl = s.template(&inst.spec.template).await?.ok_or_else(|| {
        Problem::conflict("template-missing", format!("template {:?} no longer exists", inst.spec.template))
    })?;
    let current = inst.spec.ttl.as_deref().or(tpl.spec.ttl.as_deref()).and_then(parse_duration);
    if current.is_none() {
        // It does not expire: it already lives longer than any renewal.
        return Ok(Renewed::Keep(None));
    }
    let Some(extend) = asked.or_else(|| tpl.spec.ttl.as_deref().and_then(parse_duration)) else {
        return Err(Problem::invalid("ttl", "the template has no ttl; say how long to extend by (like 30m)"));
    };
    let created = created_at(inst);
    let age = Duration::from_millis(
        jiff::Timestamp::now().as_millisecond().saturating_sub(created.as_millisecond()).max(0) as u64,
    );
    let (max, bound) = resources::admission::longest_ttl(&tpl, s.settings().max_instance_ttl);
    match renewal(current, age, extend, max) {
        Renewal::AtLimit => {
            Err(Problem::conflict("renewal-limit", format!("instance {name:?} already lives as long as {bound}")))
        }
        Renewal::Unchanged => Ok(Renewed::Keep(current)),
        Renewal::To(lifetime) => Ok(Renewed::To(lifetime)),
    }
}

fn created_at(inst: &Instance) -> jiff::Timestamp {
    inst.metadata.creation_timestamp.as_ref().map(|c| c.0).unwrap_or_else(jiff::Timestamp::now)
}

/// The view of an instance that lives `lifetime` since its creation. The
/// status holds the old expiry until the controller's next write; the answer
/// gives the new one (creation + lifetime, as the controller computes it).
fn view_with_expiry(inst: &Instance, tenant: &str, lifetime: Option<Duration>) -> InstanceView {
    let mut view = InstanceView::new(inst, tenant);
    if let Some(l) = lifetime.and_then(|l| jiff::SignedDuration::try_from(l).ok()) {
        view.expires = created_at(inst).checked_add(l).ok().map(|t| t.to_string());
    }
    view
}

/// What a renewal does to an instance's lifetime (counted from its creation).
#[derive(Debug, PartialEq)]
enum Renewal {
    /// It already lives as long as the template's maxTtl.
    AtLimit,
    /// It already lives at least `extend` more (or does not expire): a
    /// renewal never shortens a lifetime.
    Unchanged,
    /// The new lifetime.
    To(Duration),
}

/// A renewal of an instance `age` old that lives `current` (None: for ever)
/// by `extend` from now, up to `max`.
fn renewal(current: Option<Duration>, age: Duration, extend: Duration, max: Duration) -> Renewal {
    let Some(current) = current else { return Renewal::Unchanged };
    if current >= max {
        return Renewal::AtLimit;
    }
    let wanted = age.saturating_add(extend).min(max);
    if wanted <= current { Renewal::Unchanged } else { Renewal::To(wanted) }
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/instances/{instance}", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)),
    description = "Stops an instance: its pods, services and policies are removed, then the instance.",
    responses((status = 202, body = InstanceView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn stop(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<InstanceView>)> {
    let inst = visible_instance(&s, &who, &tenant, &name).await?;
    // The answer is the instance as the deletion left it (its finalizer
    // holds it while the controller removes its pods), or as it was when it
    // went at once.
    let mut inst = match api(&s, &tenant).delete(&name, &DeleteParams::default()).await {
        Ok(answer) => answer.left().unwrap_or(inst),
        Err(kube::Error::Api(a)) if a.code == 404 => return Err(Problem::not_found("instance", &name)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenant = %tenant, instance = %name, "instance stopping");
    if inst.metadata.deletion_timestamp.is_none() {
        inst.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
    }
    Ok((StatusCode::ACCEPTED, Json(InstanceView::new(&inst, &tenant))))
}

#[cfg(test)]
mod tests {
    use super::{Renewal, renewal};
    use std::time::Duration;

    #[test]
    fn a_renewal_extends_up_to_max_ttl_and_never_shortens() {
        let m = |n: u64| Duration::from_secs(60 * n);
        let cap = m(7 * 24 * 60);
        // An hour-long instance, 50 minutes old, renewed by 30 minutes: 80.
        assert_eq!(renewal(Some(m(60)), m(50), m(30), cap), Renewal::To(m(80)));
        assert_eq!(renewal(Some(m(60)), m(50), m(30), m(70)), Renewal::To(m(70)), "capped at maxTtl");
        assert_eq!(renewal(Some(m(70)), m(50), m(30), m(70)), Renewal::AtLimit);
        // 10 minutes old with 50 left: renewing by 30 would shorten it.
        assert_eq!(renewal(Some(m(60)), m(10), m(30), cap), Renewal::Unchanged);
        assert_eq!(renewal(Some(m(60)), m(30), m(30), cap), Renewal::Unchanged, "no change, no write");
        assert_eq!(renewal(None, m(10), m(30), m(70)), Renewal::Unchanged, "it does not expire");
        // The largest duration there is neither overflows nor passes the cap.
        assert_eq!(renewal(Some(m(60)), Duration::MAX, Duration::MAX, cap), Renewal::To(cap));
    }

    use super::*;

    #[test]
    fn keyed_names_are_stable_labels() {
        let a = keyed_name("ctf-web", "team-a", "k1");
        assert_eq!(a, keyed_name("ctf-web", "team-a", "k1"));
        assert_ne!(a, keyed_name("ctf-web", "team-b", "k1"));
        assert_ne!(a, keyed_name("ctf-web", "team-a", "k2"));
        let long = keyed_name(&"x".repeat(80), "t", "k");
        assert!(is_dns_label(&long) && long.len() <= MAX_NAME, "{long}");
    }

    fn start_request(v: serde_json::Value) -> StartInstance {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_start_is_admitted_or_refused_without_the_cluster() {
        let settings = controller::config::Settings::default();
        let t: resources::Tenant = serde_json::from_value(
            json!({"metadata": {"name": "red"}, "spec": {"kind": "Team", "quota": {"cpu": "1"}}}),
        )
        .unwrap();
        let tpl: Template = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"pods": [
            {"name": "a", "image": "x", "env": [{"name": "MODE", "value": "a", "overridable": true}, {"name": "FLAG", "value": "f"}],
             "resources": {"requests": {"cpu": "100m"}}}]}}))
        .unwrap();
        let keyed = admit(&t, &tpl, "red", &start_request(json!({"template": "web"})), Some("k1"), &settings).unwrap();
        assert_eq!(keyed.metadata.name, Some(keyed_name("web", "red", "k1")), "retries find it by name");
        assert_eq!(keyed.annotations()[IDEMPOTENCY_KEY], "k1");
        assert_eq!(keyed.finalizers(), [resources::vocabulary::INSTANCE_FINALIZER]);
        let generated = admit(&t, &tpl, "red", &start_request(json!({"template": "web"})), None, &settings).unwrap();
        assert_eq!((generated.metadata.name, generated.metadata.generate_name.as_deref()), (None, Some("web-")));
        let refused = |body: serde_json::Value, tpl: &Template, t: &resources::Tenant| {
            admit(t, tpl, "red", &start_request(body), None, &settings).unwrap_err()
        };
        let p = refused(json!({"template": "web", "env": {"FLAG": "mine"}}), &tpl, &t);
        assert_eq!((p.status, p.field.as_deref()), (422, Some("env.FLAG")), "{}", p.detail);
        let p = refused(json!({"template": "web", "name": "Not_A_Label"}), &tpl, &t);
        assert_eq!((p.status, p.field.as_deref()), (422, Some("name")));
        let mut deleting = tpl.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        let p = refused(json!({"template": "web"}), &deleting, &t);
        assert_eq!((p.status, p.kind.as_str()), (409, "https://paddock.dev/problems/template-deleting"));
        let mut small = t.clone();
        small.spec.quota.cpu = Some("50m".into());
        let p = refused(json!({"template": "web"}), &tpl, &small);
        assert!(p.status == 422 && p.detail.contains("more than tenant \"red\"'s whole quota"), "{}", p.detail);
    }
}
