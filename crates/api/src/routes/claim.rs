//! `GET /v1/claim`: how a warm pod learns whom it belongs to. A pod of a
//! template with `warmPool.personalize: api` starts before any tenant claims
//! it, with a pool token mounted from its set's Secret; it long-polls here
//! and, once claimed, receives the instance's identity and its per-instance
//! values (generated, overridable and Secret-sourced variables). Fed by the
//! hub's shared watch: a waiting pod costs no API-server request.

use crate::auth::bearer;
use crate::problem::{Json, Problem, Query, Result};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use controller::pool::build::{parse_token, token_secret};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use resources::Instance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

/// Longest a request may wait for its claim.
pub const MAX_WAIT: u64 = 60;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Wait {
    /// Seconds to wait for the claim (0–60, default 30); 204 when it did not come.
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// What a claimed pod is told.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    pub tenant: String,
    pub namespace: String,
    pub instance: String,
    pub template: String,
    /// The template's pod this is.
    pub pod: String,
    /// The pod's per-instance variables (with `PADDOCK_HEARTBEAT_URL` and
    /// `PADDOCK_HEARTBEAT_TOKEN` when the template reaps idle instances).
    pub values: BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/v1/claim", tag = "pools", params(Wait),
    description = "For warm pods of templates with `warmPool.personalize: api`, authenticated by the pod's pool token \
        (`Authorization: Bearer <contents of $PADDOCK_CLAIM_TOKEN_FILE>`): waits until the pod set is claimed, then \
        answers the instance's identity and the pod's per-instance values.",
    responses((status = 200, body = ClaimView, description = "Claimed: who the pod belongs to and its values"),
        (status = 204, description = "Not claimed within the wait; ask again"),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn claim(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<Wait>) -> Result<Response> {
    let wait = q.wait.unwrap_or(30);
    if wait > MAX_WAIT {
        return Err(
            Problem::bad_request(format!("wait must be between 0 and {MAX_WAIT} seconds, not {wait}")).field("wait")
        );
    }
    let token = bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))?;
    let (set, pod) = verify(&s, token).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let (claimant, mut rx) = s.hub.claimant(&set);
        if let Some((ns, name)) = claimant {
            return Ok(Json(view(&s, &ns, &name, &pod).await?).into_response());
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
            // A change (or a lagged receiver): look again.
            Ok(_) => continue,
        }
    }
}

/// The set and pod a pool token belongs to, when it is one.
async fn verify(s: &Shared, token: &str) -> Result<(String, String)> {
    let refused = || Problem::unauthorized("not a valid pool token");
    let (set, pod) = parse_token(token).ok_or_else(refused)?;
    if !resources::is_dns_label(set) || !resources::is_dns_label(pod) {
        return Err(refused());
    }
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.settings().pool_namespace);
    let stored = secrets.get_opt(&token_secret(set)).await?.and_then(|sec| sec.data).and_then(|d| d.get(pod).cloned());
    match stored {
        Some(v) if bool::from(v.0.as_slice().ct_eq(token.as_bytes())) => Ok((set.to_string(), pod.to_string())),
        _ => {
            tracing::info!(set = %set, "refused a pool token");
            Err(refused())
        }
    }
}

async fn view(s: &Shared, ns: &str, name: &str, pod: &str) -> Result<ClaimView> {
    let inst = Api::<Instance>::namespaced(s.client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| Problem::unavailable("the claiming instance is gone; the pod will be removed"))?;
    let tpl = s
        .template(&inst.spec.template)
        .await?
        .ok_or_else(|| Problem::unavailable(format!("template {:?} is gone", inst.spec.template)))?;
    let p = tpl.spec.pods.iter().find(|p| p.name == pod).ok_or_else(|| {
        Problem::unavailable(format!("template {:?} has no pod {pod:?} any more", tpl.spec.pods.len()))
    })?;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), ns);
    let mut cache: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut read = async |secret: &str, key: &str| -> Result<Option<String>> {
        if !cache.contains_key(secret) {
            let data = secrets.get_opt(secret).await?.and_then(|x| x.data).unwrap_or_default();
            cache.insert(secret.to_string(), data.into_iter().map(|(k, v)| (k, v.0)).collect());
        }
        Ok(cache.get(secret).and_then(|d| d.get(key)).and_then(|v| String::from_utf8(v.clone()).ok()))
    };
    let mut values = BTreeMap::new();
    let generated = format!("{name}-secrets");
    for e in &p.env {
        let v = if let Some(v) = inst.spec.env.get(&e.name).filter(|_| e.overridable) {
            Some(v.clone())
        } else if e.generate.is_some() {
            read(&generated, &format!("{}.{}", p.name, e.name)).await?
        } else if let Some(r) = &e.secret {
            read(&r.name, &r.key).await?
        } else if e.overridable {
            e.value.clone()
        } else {
            // Fixed values are in the pod's environment already.
            continue;
        };
        let v = v.ok_or_else(|| Problem::unavailable(format!("{} is not available yet; ask again", e.name)))?;
        values.insert(e.name.clone(), v);
    }
    let tenant = s.tenant_of(ns).unwrap_or_else(|| ns.to_string());
    if controller::instance::build::heartbeats(&tpl) {
        // The instance's heartbeat, as a cold start's pods get it in their environment.
        let token = read(&generated, resources::vocabulary::HEARTBEAT_TOKEN_KEY).await?;
        let token = token.ok_or_else(|| Problem::unavailable("the heartbeat token is not available yet; ask again"))?;
        let url = controller::instance::build::heartbeat_url(&s.settings().claim_url, &tenant, name);
        values.insert("PADDOCK_HEARTBEAT_URL".to_string(), url);
        values.insert("PADDOCK_HEARTBEAT_TOKEN".to_string(), token);
    }
    Ok(ClaimView {
        tenant,
        namespace: ns.to_string(),
        instance: name.to_string(),
        template: inst.spec.template.clone(),
        pod: pod.to_string(),
        values,
    })
}
