//! `/v1/tenants/{tenant}/instances/{instance}/heartbeat`, `…/suspend` and
//! `…/resume`: saying an instance is in use (its idle clock starts again),
//! and suspending and resuming it. A suspended instance keeps its Secret,
//! Services, storage and lifetime; only its pods go, and with them the pod,
//! CPU and memory quota they held.

use super::named;
use super::visible_instance;
use crate::auth::bearer;
use crate::model::InstanceView;
use crate::problem::{Json, Path, Problem, Result};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{Patch, PatchParams};
use resources::instance::SUSPEND_REASON;
use resources::template::Idle;
use resources::vocabulary::{HEARTBEAT_TOKEN_KEY, HEARTBEAT_TOKEN_PREFIX};
use resources::{Instance, InstancePhase};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use utoipa::ToSchema;

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// The instance's phase as the heartbeat found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The last sign of use on record (heartbeats closer together than a
    /// tenth of the idle period, at most a minute, are not each written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// When it counts as idle if no other sign of use comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_at: Option<String>,
    /// Whether this heartbeat resumed a suspended instance.
    pub resumed: bool,
    /// What was (not) done, in plain words.
    pub note: String,
}

fn api(s: &Shared, tenant: &str) -> Api<Instance> {
    Api::namespaced(s.client.clone(), &s.namespace(tenant))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/instances/{instance}/heartbeat", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)),
    description = "Says the instance is in use: its idle clock (the template's `idle.after`) starts again. \
        Authenticated by the tenant's (or an admin) token, or by the instance's own heartbeat token \
        (`$PADDOCK_HEARTBEAT_TOKEN` in its pods), which allows this and nothing else. On a suspended \
        instance it resumes it when the template says `idle.resumeOnUse`, and answers 409 otherwise.",
    responses((status = 200, body = Heartbeat), (status = 202, body = Heartbeat, description = "Resumed"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response> {
    let token = bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))?;
    let view = if token.starts_with(HEARTBEAT_TOKEN_PREFIX) {
        by_instance_token(&s, &tenant, &name, token).await?
    } else {
        let who = s
            .creds
            .verify(token)
            .ok_or_else(|| Problem::unauthorized("the token is not valid (expired, revoked, or never issued)"))?;
        let ns = s.namespace(&tenant);
        match s.hub.get(&ns, &name).filter(|_| who.see_tenant(&tenant).is_ok()) {
            Some(v) => v,
            None => InstanceView::new(&visible_instance(&s, &who, &tenant, &name).await?, &tenant),
        }
    };
    still_there(&view, &name)?;
    let idle = s.template(&view.template).await?.and_then(|t| t.spec.idle.clone());
    if suspended(&view) {
        let Some(idle) = idle.filter(|i| i.resume_on_use) else {
            return Err(Problem::conflict(
                "suspended",
                format!(
                    "instance {name:?} is suspended; resume it with POST /v1/tenants/{tenant}/instances/{name}/resume"
                ),
            ));
        };
        resume_checked(&s, &tenant, &name, &view.template).await?;
        let note = format!("the instance was suspended; its template resumes it on use (idle after {})", idle.after);
        let answer = Heartbeat { phase: view.phase, last_activity: None, idle_at: None, resumed: true, note };
        return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
    }
    let Some(idle) = idle else {
        let note = format!("template {:?} does not reap idle instances; nothing was recorded", view.template);
        let answer = Heartbeat { phase: view.phase, last_activity: None, idle_at: None, resumed: false, note };
        return Ok(Json(answer).into_response());
    };
    Ok(Json(record(&s, &tenant, &name, &view, &idle).await?).into_response())
}

/// The instance whose heartbeat token `token` is, or 401: the same answer
/// for a wrong token and an instance that does not exist.
async fn by_instance_token(s: &Shared, tenant: &str, name: &str, token: &str) -> Result<InstanceView> {
    let refused = || Problem::unauthorized(format!("not the heartbeat token of instance {name:?}"));
    if !resources::is_dns_label(tenant) || named("instance", name).is_err() {
        return Err(refused());
    }
    let ns = s.namespace(tenant);
    let known = match s.heartbeat_tokens.check(&ns, name, token) {
        Some(known) => known,
        None => {
            let secret = Api::<Secret>::namespaced(s.client.clone(), &ns).get_opt(&format!("{name}-secrets")).await?;
            let stored = secret.and_then(|x| x.data).and_then(|d| d.get(HEARTBEAT_TOKEN_KEY).cloned());
            s.heartbeat_tokens.learn(&ns, name, stored.as_ref().map(|b| b.0.as_slice()));
            s.heartbeat_tokens.check(&ns, name, token).unwrap_or(false)
        }
    };
    if !known {
        tracing::info!(tenant = %tenant, instance = %name, "refused a heartbeat token");
        return Err(refused());
    }
    match s.hub.get(&ns, name) {
        Some(v) => Ok(v),
        None => {
            let inst = api(s, tenant).get_opt(name).await?.ok_or_else(|| Problem::not_found("instance", name))?;
            Ok(InstanceView::new(&inst, tenant))
        }
    }
}

/// 409 for an instance that is going or gone: stopping, expired or failed.
fn still_there(view: &InstanceView, name: &str) -> Result<()> {
    match view.phase.as_deref() {
        _ if view.stopping => Err(Problem::conflict("stopping", format!("instance {name:?} is being stopped"))),
        Some("Expired") => Err(Problem::conflict("expired", format!("instance {name:?} has expired; start a new one"))),
        Some("Failed") => Err(Problem::conflict(
            "failed",
            format!("instance {name:?} has failed; see its status, and start a new one"),
        )),
        _ => Ok(()),
    }
}

fn suspended(view: &InstanceView) -> bool {
    view.suspend || view.phase.as_deref() == Some(InstancePhase::Suspended.as_str())
}

/// Writes the heartbeat as the instance's last activity, unless one was
/// written less than a tenth of its idle period ago (at least a second, at
/// most a minute): a client that sends many costs at most one write each.
async fn record(s: &Shared, tenant: &str, name: &str, view: &InstanceView, idle: &Idle) -> Result<Heartbeat> {
    let period = idle.period().unwrap_or(resources::template::MIN_IDLE);
    let step = (period / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    // In microseconds, as the status keeps it.
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap_or_else(|_| Timestamp::now());
    let st = view.status.as_ref();
    let last = st.and_then(|x| x.last_activity.as_ref()).map(|t| t.0);
    let fresh = last.is_some_and(|l| l.duration_until(now).unsigned_abs() < step && l <= now);
    let (last, note) = if fresh {
        (last, "a heartbeat came a moment ago; this one was not written".to_string())
    } else {
        let patch = json!({"status": {"lastActivity": MicroTime(now)}});
        api(s, tenant).patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        (Some(now), "recorded".to_string())
    };
    let since = [last, st.and_then(|x| x.ready.as_ref()).map(|t| t.0)].into_iter().flatten().max();
    let idle_at = since
        .zip(SignedDuration::try_from(period).ok())
        .and_then(|(t, d)| t.checked_add(d).ok())
        .map(|t| t.to_string());
    Ok(Heartbeat {
        phase: view.phase.clone(),
        last_activity: last.map(|t| t.to_string()),
        idle_at,
        resumed: false,
        note,
    })
}

/// Sets or clears `spec.suspend` (with the annotation saying why).
async fn set_suspend(s: &Shared, tenant: &str, name: &str, suspend: bool) -> Result<Instance> {
    let reason = if suspend { json!("Requested") } else { json!(null) };
    let patch = json!({"metadata": {"annotations": {SUSPEND_REASON: reason}}, "spec": {"suspend": suspend}});
    match api(s, tenant).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(i) => Ok(i),
        Err(kube::Error::Api(a)) if a.code == 404 => Err(Problem::not_found("instance", name)),
        Err(e) => Err(e.into()),
    }
}

/// Resumes a suspended instance, if the tenant's quota has room for its
/// template's pods in its namespace now (429 otherwise; the controller
/// checks again, with its pods claimed from warm pools, before it starts
/// them).
pub(super) async fn resume_checked(s: &Shared, tenant: &str, name: &str, template: &str) -> Result<Instance> {
    let t = s.tenant(tenant).await?.ok_or_else(|| Problem::not_found("tenant", tenant))?;
    if let Some(tpl) = s.template(template).await? {
        let ns = s.namespace(tenant);
        let quota =
            s.quotas.get(&kube::runtime::reflector::ObjectRef::new(resources::vocabulary::TENANT_QUOTA).within(&ns));
        // The quota's own count, or (a quota that does not count pods) the pods.
        let used = match quota.as_deref().and_then(resources::usage::Usage::of_quota) {
            Some(u) => Some(u),
            None if resources::usage::limits_pods(&t) => {
                let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(s.client.clone(), &ns);
                Some(resources::usage::Usage::of_pods(&pods.list(&Default::default()).await?.items))
            }
            None => None,
        };
        let floor = resources::usage::template_floor(&tpl.spec);
        if let Some(why) = used.and_then(|u| resources::usage::exceeded(&t, u, floor)) {
            return Err(Problem::limit("quota-exceeded", format!("{why}; stop another instance first"), 30));
        }
    }
    let resumed = set_suspend(s, tenant, name, false).await?;
    tracing::info!(tenant = %tenant, instance = %name, "instance resuming");
    Ok(resumed)
}

/// A renewal is use too: a suspended instance whose template resumes on
/// use is resumed by it (and answered as resumed).
pub(super) async fn resume_on_use(s: &Shared, tenant: &str, inst: Instance) -> Result<Instance> {
    if !inst.spec.suspend {
        return Ok(inst);
    }
    let idle = s.template(&inst.spec.template).await?.and_then(|t| t.spec.idle.clone());
    if !idle.is_some_and(|i| i.resume_on_use) {
        return Ok(inst);
    }
    let name = inst.metadata.name.clone().unwrap_or_default();
    resume_checked(s, tenant, &name, &inst.spec.template).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/instances/{instance}/suspend", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)),
    description = "Suspends an instance: its pods are removed (and the pod, CPU and memory quota they held is \
        free); its Secret (so its generated values), Services, storage and lifetime stay. A suspended instance \
        still expires at its ttl.",
    responses((status = 202, body = InstanceView, description = "Suspending"),
        (status = 200, body = InstanceView, description = "Already suspended"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn suspend(
    State(s): State<AppState>,
    who: crate::auth::Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<InstanceView>)> {
    switch(&s, &who, &tenant, &name, true).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/instances/{instance}/resume", tag = "instances",
    params(("tenant" = String, Path), ("instance" = String, Path)),
    description = "Resumes a suspended instance: its pods start again (from the warm pool when the template has \
        one), with the same generated values. 429 when the tenant's quota has no room for them now.",
    responses((status = 202, body = InstanceView, description = "Resuming"),
        (status = 200, body = InstanceView, description = "Not suspended: nothing to do"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem, description = "The tenant's quota has no room; see Retry-After")))]
pub async fn resume(
    State(s): State<AppState>,
    who: crate::auth::Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<InstanceView>)> {
    switch(&s, &who, &tenant, &name, false).await
}

/// Suspends (`suspend`) or resumes an instance the caller may see: 200 as
/// it is when it already is so, 202 once asked.
async fn switch(
    s: &Shared,
    who: &crate::auth::Principal,
    tenant: &str,
    name: &str,
    suspend: bool,
) -> Result<(StatusCode, Json<InstanceView>)> {
    let inst = visible_instance(s, who, tenant, name).await?;
    let view = InstanceView::new(&inst, tenant);
    still_there(&view, name)?;
    if inst.spec.suspend == suspend {
        return Ok((StatusCode::OK, Json(view)));
    }
    let changed = if suspend {
        tracing::info!(tenant = %tenant, instance = %name, "instance suspending");
        set_suspend(s, tenant, name, true).await?
    } else {
        resume_checked(s, tenant, name, &inst.spec.template).await?
    };
    Ok((StatusCode::ACCEPTED, Json(InstanceView::new(&changed, tenant))))
}
