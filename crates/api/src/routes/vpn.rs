//! `/v1/tenants/{tenant}/vpn`: the team VPN's client slots, wg-quick files,
//! and key rotation. Keys live only in the tenant's Secret `vpn`; a client
//! file is rendered from it on request and never stored elsewhere.

use super::visible_tenant;
use crate::auth::Principal;
use crate::problem::{Json, Path, Problem, Query, Result};
use crate::state::{AppState, Shared};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use controller::tenant::vpn::{Keys, NAME};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use resources::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vpn::Key;

/// The VPN of a tenant and its client slots (public facts only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnView {
    pub tenant: String,
    /// `host:port` clients connect to (absent until known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub server_public_key: String,
    pub address_pool: String,
    pub ready: bool,
    pub clients: Vec<VpnClient>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnClient {
    pub number: u32,
    pub address: String,
    pub public_key: String,
}

struct Loaded {
    tenant: std::sync::Arc<Tenant>,
    pool: Ipv4Net,
    keys: Keys,
    secret: Api<Secret>,
}

async fn load(s: &Shared, who: &Principal, tenant: &str) -> Result<Loaded> {
    let t = visible_tenant(s, who, tenant).await?;
    if !t.spec.vpn.as_ref().is_some_and(|v| v.enabled) {
        return Err(Problem::conflict(
            "vpn-disabled",
            format!("tenant {tenant:?} has no VPN (spec.vpn.enabled is false)"),
        ));
    }
    let not_yet = || {
        Problem::conflict(
            "vpn-provisioning",
            format!("the VPN of tenant {tenant:?} is still being set up; retry shortly"),
        )
    };
    let pool = t
        .status
        .as_ref()
        .and_then(|st| st.vpn.as_ref())
        .and_then(|v| v.address_pool.as_ref())
        .and_then(|p| p.parse().ok())
        .ok_or_else(not_yet)?;
    let secret: Api<Secret> = Api::namespaced(s.client.clone(), &s.namespace(tenant));
    let keys = secret.get_opt(NAME).await?.as_ref().and_then(Keys::from_secret).ok_or_else(not_yet)?;
    Ok(Loaded { tenant: t, pool, keys, secret })
}

fn view(l: &Loaded) -> VpnView {
    let st = l.tenant.status.as_ref().and_then(|s| s.vpn.clone()).unwrap_or_default();
    VpnView {
        tenant: kube::ResourceExt::name_any(&*l.tenant),
        endpoint: st.endpoint,
        server_public_key: l.keys.server.public().to_base64(),
        address_pool: l.pool.to_string(),
        ready: st.ready,
        clients: l
            .keys
            .clients
            .iter()
            .map(|(n, (k, _))| VpnClient {
                number: *n,
                address: vpn::client_address(l.pool, *n).to_string(),
                public_key: k.public().to_base64(),
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/vpn/clients", tag = "vpn", params(("tenant" = String, Path)),
    description = "The tenant's VPN and its client slots (public keys and addresses).",
    responses((status = 200, body = VpnView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The tenant has no VPN, or it is being set up")))]
pub async fn clients(State(s): State<AppState>, who: Principal, Path(tenant): Path<String>) -> Result<Json<VpnView>> {
    Ok(Json(view(&load(&s, &who, &tenant).await?)))
}

fn slot(l: &Loaded, n: u32) -> Result<&(Key, Key)> {
    l.keys.clients.get(&n).ok_or_else(|| {
        let mut p = Problem::not_found("VPN client", &n.to_string());
        if let (Some(first), Some(last)) = (l.keys.clients.keys().next(), l.keys.clients.keys().next_back()) {
            p.detail = format!("{}; the VPN has clients {first} to {last}", p.detail);
        }
        p
    })
}

/// A client number from the path; anything else names no slot (404).
fn number(s: &str) -> Result<u32> {
    s.parse().map_err(|_| Problem::not_found("VPN client", s))
}

/// How a client's configuration is handed out.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    /// `conf` (default): the wg-quick file as text; `qr`: the same file as a
    /// QR code (SVG) for the WireGuard mobile apps' "scan from QR code".
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/vpn/clients/{client}/config", tag = "vpn",
    params(("tenant" = String, Path), ("client" = u32, Path, description = "Client number, from 1"), ConfigQuery),
    description = "A wg-quick file for one client (`text/plain`), or with `format=qr` the same file as a QR code \
        (`image/svg+xml`). It holds the client's private key: treat it as a secret.",
    responses((status = 200, description = "The wg-quick file, or (format=qr) its QR code",
        content((String = "text/plain"), (String = "image/svg+xml"))), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn config(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, n)): Path<(String, String)>,
    Query(q): Query<ConfigQuery>,
) -> Result<Response> {
    let qr = match q.format.as_deref() {
        None | Some("conf") => false,
        Some("qr") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!("format {other:?} is not one of conf, qr")).field("format"));
        }
    };
    let l = load(&s, &who, &tenant).await?;
    let n = number(&n)?;
    let (private, psk) = slot(&l, n)?;
    let endpoint = view(&l).endpoint.ok_or_else(|| {
        Problem::conflict(
            "vpn-no-endpoint",
            "the VPN has no public endpoint yet: set PADDOCK_VPN_ENDPOINT (or spec.vpn.endpoint), or wait for the load balancer",
        )
    })?;
    let settings = s.settings();
    let text = vpn::client_config(&vpn::Client {
        pool: l.pool,
        number: n,
        private,
        preshared: psk,
        server_public: &l.keys.server.public(),
        endpoint: &endpoint,
        allowed_ips: &settings.vpn_allowed_ips,
        dns: settings.vpn_dns.as_deref(),
    });
    tracing::info!(tenant = %tenant, client = n, qr, "VPN client config handed out");
    if qr {
        return Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], qr_svg(&text)?)
            .into_response());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], text)
        .into_response())
}

/// `text` as a QR code in SVG, with the quiet zone scanners need.
fn qr_svg(text: &str) -> Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L).map_err(|e| {
        tracing::error!(error = %e, "a VPN configuration did not fit a QR code");
        Problem::conflict("vpn-config-too-long", format!("the configuration does not fit a QR code: {e}"))
    })?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).quiet_zone(true).build())
}

async fn save(l: &Loaded, keys: &Keys, port: u16) -> Result<()> {
    let data = keys.data(l.pool, port);
    let patch = serde_json::json!({"stringData": data});
    l.secret.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/vpn/clients/{client}/rotate", tag = "vpn",
    params(("tenant" = String, Path), ("client" = u32, Path)),
    description = "New keys for one client: its old file stops working once the server restarts with the new configuration (seconds).",
    responses((status = 200, body = VpnView), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rotate_client(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, n)): Path<(String, String)>,
) -> Result<Json<VpnView>> {
    let mut l = load(&s, &who, &tenant).await?;
    let n = number(&n)?;
    slot(&l, n)?;
    let mut keys = l.keys.clone();
    keys.clients.insert(n, (Key::generate(), Key::preshared()));
    let port = l.tenant.spec.vpn.as_ref().map_or(51820, |v| v.port);
    save(&l, &keys, port).await?;
    tracing::info!(tenant = %tenant, client = n, "VPN client keys rotated");
    l.keys = keys;
    Ok(Json(view(&l)))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/vpn/rotate", tag = "vpn", params(("tenant" = String, Path)),
    description = "New keys for the server and every client: all old files stop working.",
    responses((status = 200, body = VpnView), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rotate_all(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
) -> Result<Json<VpnView>> {
    let mut l = load(&s, &who, &tenant).await?;
    let count = l.keys.clients.len() as u32;
    let keys = Keys::new(count);
    let port = l.tenant.spec.vpn.as_ref().map_or(51820, |v| v.port);
    save(&l, &keys, port).await?;
    tracing::info!(tenant = %tenant, "all VPN keys rotated");
    l.keys = keys;
    Ok(Json(view(&l)))
}
