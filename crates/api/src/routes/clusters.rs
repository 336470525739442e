//! `/v1/tenants/{tenant}/clusters`: a tenant's own Kubernetes clusters,
//! built by Cluster API (the cluster reconciler): create, look at, scale,
//! delete, and hand out the kubeconfig and, once, the SSH private key.
//!
//! Both secrets are kept sealed in the cluster's Secret `<cluster>-paddock`
//! (see `controller::cluster::sealed`) and opened here for the request only;
//! they are never logged.

use super::{list_params, visible_tenant};
use crate::auth::Principal;
use crate::model::{Page, Paging};
use crate::problem::{Json, Path, Problem, Query, RawBody, Result, body_of};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use controller::cluster::sealed::{KEYS_SECRET, KeyRing};
use controller::cluster::vault::{self, SSH_PRIVATE};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use resources::cluster::{Cluster, ClusterHealth, ClusterProfile, ClusterSpec, MAX_NAME};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// A tenant cluster as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub name: String,
    pub tenant: String,
    pub profile: String,
    pub version: Option<String>,
    /// The version asked for (`spec.version`; none: the profile's first).
    /// When it differs from `version`, an upgrade is under way.
    pub requested_version: Option<String>,
    pub control_plane: u32,
    pub workers: u32,
    /// Provisioning, Running, Degraded, Repairing, Deleting or Failed.
    pub phase: String,
    /// Why, when it is not Running.
    pub message: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub health: Option<ClusterHealth>,
    pub endpoint: Option<String>,
    pub ssh_public_key: Option<String>,
    /// Whether the SSH private key was handed out (it can be, once).
    pub ssh_key_retrieved: bool,
    /// Whether the kubeconfig can be fetched.
    pub kubeconfig_ready: bool,
    /// False when the Kubernetes API server refused a write for this
    /// cluster (`message` says which and why; condition `Applied`).
    pub applied: bool,
    pub created: Option<String>,
}

impl ClusterView {
    fn new(c: &Cluster, tenant: &str) -> Self {
        let st = c.status.clone().unwrap_or_default();
        let phase = if c.metadata.deletion_timestamp.is_some() {
            "Deleting".to_string()
        } else {
            st.phase.clone().unwrap_or_else(|| "Pending".into())
        };
        let message = st
            .conditions
            .iter()
            .filter(|x| x.status == "False" && !x.message.is_empty())
            .map(|x| x.message.clone())
            .next();
        Self {
            name: c.name_any(),
            tenant: tenant.into(),
            profile: c.spec.profile.clone(),
            version: st.version.clone().or(c.spec.version.clone()),
            requested_version: c.spec.version.clone(),
            control_plane: c.spec.control_plane,
            workers: c.spec.workers,
            phase,
            message,
            health: st.health.clone(),
            endpoint: st.endpoint.clone(),
            ssh_public_key: st.ssh_public_key.clone(),
            ssh_key_retrieved: st.ssh_key_retrieved,
            kubeconfig_ready: st.kubeconfig_ready,
            applied: !st.conditions.iter().any(|x| x.type_ == "Applied" && x.status == "False"),
            created: c.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        }
    }
}

/// A cluster to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCluster {
    /// 1 to 40 lowercase letters, digits and '-'.
    pub name: String,
    /// The ClusterProfile (default `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// e.g. v1.29.0 (default: the profile's first version).
    #[serde(default)]
    pub version: Option<String>,
    /// 1, 3 or 5 (as the profile allows; default 1).
    #[serde(default)]
    pub control_plane: Option<u32>,
    /// Workers (default 2).
    #[serde(default)]
    pub workers: Option<u32>,
}

/// A change of a cluster: its worker count, its Kubernetes version, or both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct UpdateCluster {
    /// The new number of workers.
    #[serde(default)]
    pub workers: Option<u32>,
    /// The version to upgrade to: the next minor version at most, never
    /// older than the one running, and one the profile offers.
    #[serde(default)]
    pub version: Option<String>,
}

fn api(s: &Shared, tenant: &str) -> Api<Cluster> {
    Api::namespaced(s.client.clone(), &s.namespace(tenant))
}

async fn visible(s: &Shared, who: &Principal, tenant: &str, name: &str) -> Result<Cluster> {
    visible_tenant(s, who, tenant).await?;
    super::named("cluster", name)?;
    api(s, tenant).get_opt(name).await?.ok_or_else(|| Problem::not_found("cluster", name))
}

async fn profile(s: &Shared, name: &str) -> Result<ClusterProfile> {
    let missing = || Problem::invalid("profile", format!("there is no cluster profile {name:?}"));
    if !super::object_name(name) {
        return Err(missing());
    }
    Api::<ClusterProfile>::all(s.client.clone()).get_opt(name).await?.ok_or_else(missing)
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/clusters", tag = "clusters", params(("tenant" = String, Path), Paging),
    responses((status = 200, body = Page<ClusterView>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(p): Query<Paging>,
) -> Result<Json<Page<ClusterView>>> {
    let lp = list_params(&p)?;
    visible_tenant(&s, &who, &tenant).await?;
    let list = api(&s, &tenant).list(&lp).await?;
    let next = list.metadata.continue_.filter(|c| !c.is_empty());
    Ok(Json(Page { items: list.items.iter().map(|c| ClusterView::new(c, &tenant)).collect(), next }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/clusters/{cluster}", tag = "clusters",
    params(("tenant" = String, Path), ("cluster" = String, Path)),
    responses((status = 200, body = ClusterView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<ClusterView>> {
    Ok(Json(ClusterView::new(&visible(&s, &who, &tenant, &name).await?, &tenant)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/clusters", tag = "clusters", params(("tenant" = String, Path)),
    request_body = CreateCluster,
    description = "Creates a Kubernetes cluster for the tenant (Cluster API builds it; watch `phase`).",
    responses((status = 201, body = ClusterView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "The tenant is at its cluster quota")))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response> {
    let t = visible_tenant(&s, &who, &tenant).await?;
    let body: CreateCluster = body_of(&body)?;
    super::may_start(&t, &tenant)?;
    if body.name.len() > MAX_NAME || !resources::is_dns_label(&body.name) {
        return Err(Problem::invalid(
            "name",
            format!("a cluster name is 1 to {MAX_NAME} lowercase letters, digits and '-'"),
        ));
    }
    let spec = ClusterSpec {
        profile: body.profile.clone().unwrap_or_else(|| resources::cluster::DEFAULT_PROFILE.into()),
        version: body.version.clone(),
        control_plane: body.control_plane.unwrap_or(1),
        workers: body.workers.unwrap_or(2),
    };
    let p = profile(&s, &spec.profile).await?;
    let problems = spec.validate_on(&p.spec);
    if !problems.is_empty() {
        return Err(super::invalid(&problems).field(problems[0].field.trim_start_matches("spec.").to_string()));
    }
    let mut c = Cluster::new(&body.name, spec);
    let existing = api(&s, &tenant).list(&Default::default()).await?;
    if let Some(why) = resources::cluster::quota_problem(&t.spec.quota, &existing.items, &c) {
        return Err(Problem::limit("cluster-quota", why, 60));
    }
    c.metadata.namespace = Some(s.namespace(&tenant));
    // An installation with a scope reconciles only the clusters labelled so.
    if let Some((k, v)) = &s.settings().scope {
        c.metadata.labels = Some([(k.clone(), v.clone())].into());
    }
    let made = match api(&s, &tenant).create(&PostParams::default(), &c).await {
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(Problem::conflict("cluster-exists", format!("cluster {:?} exists", body.name)));
        }
        other => other?,
    };
    let view = ClusterView::new(&made, &tenant);
    let mut r = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/tenants/{tenant}/clusters/{}", body.name)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(patch, path = "/v1/tenants/{tenant}/clusters/{cluster}", tag = "clusters",
    params(("tenant" = String, Path), ("cluster" = String, Path)), request_body = UpdateCluster,
    description = "Scales the cluster's workers and/or upgrades its Kubernetes version (one minor version at a \
        time, never down; Cluster API rolls the machines).",
    responses((status = 200, body = ClusterView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn update(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<ClusterView>> {
    let c = visible(&s, &who, &tenant, &name).await?;
    let body: UpdateCluster = body_of(&body)?;
    if body.workers.is_none() && body.version.is_none() {
        return Err(Problem::invalid("workers", "give `workers`, `version` or both: this body changes nothing"));
    }
    let t = visible_tenant(&s, &who, &tenant).await?;
    let p = profile(&s, &c.spec.profile).await?;
    let mut changed = c.clone();
    changed.spec.workers = body.workers.unwrap_or(c.spec.workers);
    if let Some(v) = &body.version {
        // From what runs (the status), or what was asked (or the profile's default) when nothing runs yet.
        let running = c.status.as_ref().and_then(|st| st.version.clone()).or(c.spec.version.clone());
        let running = running.or(p.spec.versions.first().cloned());
        if let Some(why) = running.and_then(|from| resources::cluster::upgrade_problem(&from, v)) {
            return Err(Problem::invalid("version", why));
        }
        changed.spec.version = Some(v.clone());
    }
    if let Some(first) = changed.spec.validate_on(&p.spec).first() {
        let field = first.field.strip_prefix("spec.").unwrap_or(&first.field).to_string();
        return Err(Problem::invalid(&field, first.reason.clone()));
    }
    let existing = api(&s, &tenant).list(&Default::default()).await?;
    if let Some(why) = resources::cluster::quota_problem(&t.spec.quota, &existing.items, &changed) {
        return Err(Problem::limit("cluster-quota", why, 60));
    }
    let patch = json!({"spec": {"workers": changed.spec.workers, "version": changed.spec.version}});
    let after = api(&s, &tenant).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(Json(ClusterView::new(&after, &tenant)))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/clusters/{cluster}", tag = "clusters",
    params(("tenant" = String, Path), ("cluster" = String, Path)),
    description = "Deletes the cluster; Cluster API takes its machines down (phase Deleting until then).",
    responses((status = 202, body = ClusterView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response> {
    let c = visible(&s, &who, &tenant, &name).await?;
    let _ = api(&s, &tenant).delete(&name, &DeleteParams::default()).await?;
    let mut view = ClusterView::new(&c, &tenant);
    view.phase = "Deleting".into();
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The key ring, read now (the controller makes it).
async fn ring(s: &Shared) -> Result<KeyRing> {
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.settings().system_namespace);
    let Some(keys) = secrets.get_opt(KEYS_SECRET).await? else {
        return Err(Problem::unavailable("the cluster key ring does not exist yet; the controller makes it"));
    };
    KeyRing::from_data(&keys.data.unwrap_or_default()).map_err(|e| Problem::internal(e.to_string()))
}

/// A kubeconfig document as the API documents it: YAML, an object
/// (`apiVersion: v1`, `kind: Config`, clusters, contexts, users).
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct KubeconfigDocument(pub serde_json::Value);

/// A secret handed out as a file: not cached, an attachment named `filename`.
fn secret_text(body: String, content_type: &'static str, filename: &str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/clusters/{cluster}/kubeconfig", tag = "clusters",
    params(("tenant" = String, Path), ("cluster" = String, Path)),
    description = "The cluster's admin kubeconfig (YAML), once Cluster API has made it.",
    responses((status = 200, body = KubeconfigDocument, content_type = "application/yaml"), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn kubeconfig(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response> {
    let c = visible(&s, &who, &tenant, &name).await?;
    let ns = s.namespace(&tenant);
    let v = vault::Vault::read(&Api::namespaced(s.client.clone(), &ns), &name).await?;
    if v.get(vault::KUBECONFIG).is_none() {
        let phase = c.status.and_then(|st| st.phase).unwrap_or_else(|| "Pending".into());
        return Err(Problem::conflict(
            "kubeconfig-not-ready",
            format!("cluster {name:?} has no kubeconfig yet (phase {phase})"),
        ));
    }
    let ring = ring(&s).await?;
    let text = v.kubeconfig(&ring, &ns, &name).map_err(|e| Problem::internal(e.to_string()))?.unwrap_or_default();
    Ok(secret_text(text, "application/yaml", &format!("{name}.kubeconfig")))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/clusters/{cluster}/ssh-key", tag = "clusters",
    params(("tenant" = String, Path), ("cluster" = String, Path)),
    description = "The SSH private key of the `paddock` user on every machine (OpenSSH format). It is handed out \
        once: Paddock deletes its copy as it answers, and a second request gets 410.",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 410, body = Problem)))]
pub async fn ssh_key(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response> {
    visible(&s, &who, &tenant, &name).await?;
    let ns = s.namespace(&tenant);
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &ns);
    let gone =
        || Problem::of_status(410, "ssh-key-retrieved", "the SSH private key was handed out already; it is given once");
    let Some(mut secret) = secrets.get_opt(&vault::secret_name(&name)).await? else {
        return Err(Problem::conflict("ssh-key-not-ready", format!("cluster {name:?} has no SSH key yet")));
    };
    let Some(sealed) = secret.data.as_mut().and_then(|d| d.remove(SSH_PRIVATE)) else { return Err(gone()) };
    let ring = ring(&s).await?;
    let private = ring
        .open(&vault::purpose(&ns, &name, SSH_PRIVATE), &String::from_utf8_lossy(&sealed.0))
        .map_err(|e| Problem::internal(e.to_string()))?;
    // Only the request whose write wins hands the key out (the replace
    // carries the resourceVersion read).
    match secrets.replace(&vault::secret_name(&name), &PostParams::default(), &secret).await {
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(gone()),
        other => other?,
    };
    // The status says so now, not at the controller's next look; the key is
    // handed out whether or not this write lands (the controller writes it too).
    let status = json!({"status": {"sshKeyRetrieved": true}});
    if let Err(e) = api(&s, &tenant).patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
        tracing::warn!(cluster = %name, tenant = %tenant, error = %e, "could not mark the SSH key retrieved in the status");
    }
    let key = String::from_utf8_lossy(&private).into_owned();
    Ok(secret_text(key, "text/plain; charset=utf-8", &format!("{name}-ssh-key")))
}
