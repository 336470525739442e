//! `POST /v1/tenants/{tenant}/kubeconfig`: a kubeconfig for the tenant's own
//! ServiceAccount `tenant`, so its people can use `kubectl` on their
//! namespace. What it may do is the tenant's Role `tenant-reader` (read its
//! Instances, pods, pod logs, Services and Events); the token is a
//! short-lived TokenRequest token that Paddock does not keep.

use super::visible_tenant;
use crate::auth::Principal;
use crate::cluster_access::ClusterAccess;
use crate::model::{NewKubeconfig, TenantKubeconfig};
use crate::problem::{Json, Path, Problem, Result, optional_body};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use std::time::Duration;

/// Shortest, default and longest lifetime of a kubeconfig's token (the API
/// server refuses under ten minutes; a day keeps a leaked file's harm short).
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(600), Duration::from_secs(24 * 3600));
const TTL_DEFAULT: &str = "1h";

/// A kubeconfig's `ttl`, checked, in seconds.
fn ttl_seconds(ttl: &str) -> Result<i64> {
    let d = super::ttl_within(ttl, TTL_RANGE, "10m and 24h", "30m, 8h")?;
    i64::try_from(d.as_secs()).map_err(|_| Problem::invalid("ttl", format!("{ttl} is too long")))
}

/// The kubeconfig file: one cluster, one user with the token, one context in
/// the tenant's namespace.
fn render(access: &ClusterAccess, tenant: &str, namespace: &str, token: &str) -> Result<String> {
    let mut cluster = json!({"server": access.server});
    if let Some(ca) = &access.ca_pem {
        cluster["certificate-authority-data"] = json!(STANDARD.encode(ca));
    }
    if access.insecure_skip_tls_verify {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let context = format!("paddock-{tenant}");
    let doc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "paddock", "cluster": cluster}],
        "users": [{"name": format!("paddock-{tenant}"), "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "paddock", "user": format!("paddock-{tenant}"), "namespace": namespace}}],
        "current-context": context,
    });
    serde_yaml_ng::to_string(&doc).map_err(|e| Problem::internal(e.to_string()))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/kubeconfig", tag = "tenants", operation_id = "kubeconfig", params(("tenant" = String, Path)),
    request_body = NewKubeconfig,
    description = "Issues a kubeconfig for the tenant's ServiceAccount `tenant`: `kubectl` in the tenant's namespace, \
        allowed what its Role `tenant-reader` allows (read Instances, pods, pod logs, Services and Events). The token in it is a \
        Kubernetes TokenRequest token (10m to 24h, default 1h); Paddock does not keep it. Admins and the tenant.",
    responses((status = 201, body = TenantKubeconfig), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The tenant is not Ready, or is being deleted"),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn issue(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    crate::problem::RawBody(body): crate::problem::RawBody,
) -> Result<(StatusCode, Json<TenantKubeconfig>)> {
    let t = visible_tenant(&s, &who, &tenant).await?;
    let NewKubeconfig { ttl } = optional_body::<NewKubeconfig>(&body)?;
    let seconds = ttl_seconds(ttl.as_deref().unwrap_or(TTL_DEFAULT))?;
    if t.metadata.deletion_timestamp.is_some() {
        return Err(Problem::conflict("tenant-deleting", format!("tenant {tenant:?} is being deleted")));
    }
    let Some(access) = s.config.cluster_access.as_ref() else {
        return Err(Problem::unavailable(
            "this Paddock API was not told where tenants reach the Kubernetes API (--kubeconfig-server)",
        ));
    };
    let namespace = s.namespace(&tenant);
    let sa = resources::vocabulary::TENANT_SERVICE_ACCOUNT;
    // Its ServiceAccount and Role are in place once the tenant is Ready.
    let not_ready = |why: String| {
        Problem::conflict(
            "tenant-not-ready",
            format!("tenant {tenant:?} is not Ready ({why}); a kubeconfig needs its ServiceAccount {namespace}/{sa}"),
        )
    };
    let st = t.status.clone().unwrap_or_default();
    if st.phase.as_deref() != Some("Ready") {
        let phase = st.phase.unwrap_or_else(|| "Pending".into());
        let why = match st.conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) if !c.message.is_empty() => format!("{phase}: {}", c.message),
            _ => phase,
        };
        return Err(not_ready(why));
    }
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"expirationSeconds": seconds}}))
        .map_err(|e| Problem::internal(e.to_string()))?;
    let api: Api<ServiceAccount> = Api::namespaced(s.client.clone(), &namespace);
    let issued = match api.create_token_request(sa, &PostParams::default(), &request).await {
        // Deleted by hand a moment ago: the controller puts it back.
        Err(kube::Error::Api(a)) if a.code == 404 => return Err(not_ready("its ServiceAccount is missing".into())),
        r => r?,
    };
    let status = issued.status.ok_or_else(|| Problem::internal("the API server issued no token"))?;
    let kubeconfig = render(access, &tenant, &namespace, &status.token)?;
    let expires = status.expiration_timestamp.0.to_string();
    tracing::info!(tenant = %tenant, expires = %expires, "tenant kubeconfig issued");
    Ok((
        StatusCode::CREATED,
        Json(TenantKubeconfig {
            tenant,
            namespace,
            service_account: sa.to_string(),
            server: access.server.clone(),
            expires,
            kubeconfig,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddock_s_own_connection_becomes_the_kubeconfig_s_cluster() {
        let der: Vec<u8> = (0..100u8).collect();
        let mut own = kube::Config::new("https://10.0.0.1:6443/".parse().unwrap());
        own.root_cert = Some(vec![der.clone()]);
        let access = ClusterAccess::from_config(&own);
        assert_eq!(access.server, "https://10.0.0.1:6443");
        let ca = access.ca_pem.clone().unwrap();
        let lines: Vec<&str> = ca.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(lines.iter().all(|l| l.len() <= 64), "{ca}");
        assert_eq!(STANDARD.decode(lines[1..lines.len() - 1].concat()).unwrap(), der);

        let file = render(&access, "red", "paddock-red", "tok").unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&file).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some(STANDARD.encode(&ca).as_str()));
        assert_eq!(cluster.insecure_skip_tls_verify, None);
        assert_eq!(kc.current_context.as_deref(), Some("paddock-red"));

        own.root_cert = None;
        own.accept_invalid_certs = true;
        let file = render(&ClusterAccess::from_config(&own), "red", "paddock-red", "tok").unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&file).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(
            (cluster.certificate_authority_data.as_deref(), cluster.insecure_skip_tls_verify),
            (None, Some(true))
        );
    }

    #[test]
    fn lifetimes_outside_ten_minutes_to_a_day_are_refused() {
        assert_eq!(ttl_seconds("10m").unwrap(), 600);
        assert_eq!(ttl_seconds("24h").unwrap(), 86_400);
        for bad in ["9m", "25h", "1y", ""] {
            let p = ttl_seconds(bad).unwrap_err();
            assert_eq!(p.field.as_deref(), Some("ttl"), "{bad}");
        }
    }
}
