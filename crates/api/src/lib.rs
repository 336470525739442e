//! Paddock's HTTP API. Clients (a CTF site, a CI service, the CLI) use it
//! instead of Kubernetes credentials: tenants, templates, instances, tokens,
//! nodes, and live instance status over Server-Sent Events.
//!
//! Every error is `application/problem+json` ([`problem`]); every route is in
//! `/openapi.json` because the router and the document are built from the same
//! `routes!` list ([`router`]).

pub mod auth;
pub mod cluster_access;
pub mod console;
pub mod file_servers;
pub mod heartbeats;
pub mod hub;
pub mod keylock;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod state;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Request, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use problem::{BODY_LIMIT, Problem};
use routes::{
    activity, audit, claim, clusters, events, health, instances, kubeconfig, logs, nodes, storage, templates, tenants,
    tokens, vpn,
};
use state::AppState;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use cluster_access::ClusterAccess;
pub use state::{Background, Config, start, start_with};

/// Routes that answer and finish (they get the request timeout).
fn plain_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::patch, tenants::delete))
        .routes(routes!(kubeconfig::issue))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(templates::get, templates::put, templates::delete))
        .routes(routes!(instances::list_all))
        .routes(routes!(instances::list, instances::start))
        .routes(routes!(instances::get, instances::stop))
        .routes(routes!(instances::renew))
        .routes(routes!(activity::heartbeat))
        .routes(routes!(activity::suspend))
        .routes(routes!(activity::resume))
        .routes(routes!(tokens::list, tokens::issue))
        .routes(routes!(tokens::revoke))
        .routes(routes!(clusters::list, clusters::create))
        .routes(routes!(clusters::get, clusters::update, clusters::delete))
        .routes(routes!(clusters::kubeconfig))
        .routes(routes!(clusters::ssh_key))
        .routes(routes!(nodes::list))
        .routes(routes!(nodes::get))
        .routes(routes!(audit::audit))
        .routes(routes!(audit::explain))
        .routes(routes!(vpn::clients))
        .routes(routes!(vpn::config))
        .routes(routes!(vpn::rotate_client))
        .routes(routes!(vpn::rotate_all))
        .routes(routes!(storage::list, storage::delete))
        .routes(routes!(storage::group_list, storage::group_delete))
        .routes(routes!(storage::mkdir))
        .routes(routes!(storage::group_mkdir))
}

/// Routes that stream or wait for as long as the client asks (no request timeout).
fn stream_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events::all))
        .routes(routes!(events::tenant))
        .routes(routes!(claim::claim))
        .routes(routes!(logs::logs))
        // Downloads and uploads may take longer than the request timeout.
        .routes(routes!(storage::download, storage::upload))
        .routes(routes!(storage::group_download, storage::group_upload))
}

/// The OpenAPI document of every route (before the CRD schemas are merged in).
pub fn router_doc() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = plain_routes().split_for_parts();
    doc.merge(stream_routes().into_openapi());
    doc
}

/// The whole API as an axum router.
pub fn router(state: AppState) -> Router {
    let (plain, mut doc) = plain_routes().split_for_parts();
    let (streams, stream_doc) = stream_routes().split_for_parts();
    doc.merge(stream_doc);
    let doc = Arc::new(openapi::finish(doc));
    let timeout = state.config.request_timeout;
    let plain = plain
        .route("/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .route("/metrics", get(|s: State<AppState>| async move { metrics::exposition(&s.telemetry.registry) }))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
    plain
        .merge(streams)
        .route_layer(axum::middleware::from_fn_with_state(state.telemetry.api.clone(), metrics::track))
        .merge(console::routes())
        .fallback(|uri: Uri| async move { Problem::no_route(uri.path()) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            let mut p = Problem::bad_request(format!("{} does not accept {method}", uri.path()));
            p.status = 405;
            p.kind = format!("{}method-not-allowed", problem::TYPE_BASE);
            p.title = "Method not allowed".into();
            p.into_response()
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id,
                principal = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(safe_request_id))
        .with_state(state)
}

/// Drops a client's `x-request-id` that is not 1 to 128 characters of
/// letters, digits and `._:-`, so a new one is made for it: the id is
/// written into every log line of the request, and a chosen one could
/// forge fields there (`x principal="tenant:other"`).
async fn safe_request_id<B>(mut req: Request<B>) -> Request<B> {
    let ok = req.headers().get("x-request-id").is_none_or(|v| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    });
    if !ok {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Serves the API until `shutdown` resolves. Event streams then end at once
/// (their clients resume with Last-Event-ID, on another replica or after the
/// restart); requests in flight get five seconds to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let app = router(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Event frames are small writes that must leave at once: without
    // TCP_NODELAY, Nagle's algorithm holds one back while an earlier one is
    // unacknowledged, and the peer's delayed ACK makes that up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        hub.close();
        let _ = tx.send(());
    });
    let grace = async move {
        if rx.await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = graceful => r,
        _ = grace => Ok(()),
    }
}
