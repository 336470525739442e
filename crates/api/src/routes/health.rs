//! Liveness and readiness (no token needed).

use crate::model::Health;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health, description = "The process is serving"),
        (status = 503, body = Health, description = "A reconciler running in this process stopped; restart it")))]
pub async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    match s.telemetry.controller.as_ref().and_then(|m| m.unhealthy()) {
        None => (StatusCode::OK, Json(Health { status: "ok".into(), waiting_for: Vec::new() })),
        Some(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "unhealthy".into(), waiting_for: vec![why] }))
        }
    }
}

#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health, description = "Watches are synced"),
        (status = 503, body = Health, description = "Still starting")))]
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    let waiting_for = s.waiting_for();
    if waiting_for.is_empty() {
        (StatusCode::OK, Json(Health { status: "ready".into(), waiting_for }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "starting".into(), waiting_for }))
    }
}
