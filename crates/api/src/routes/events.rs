//! Live instance status as Server-Sent Events.
//!
//! Events: `snapshot` (every instance the stream covers, sent first and
//! whenever the client's cursor cannot be resumed), `status` (one instance
//! changed; the full view) and `deleted`. Each has an id; reconnect with
//! `Last-Event-ID` (or `?lastEventId=`) to get what was missed. Heartbeats are
//! SSE comments. A stream lives only as long as its token: within a second
//! of the token being revoked or expiring, a last `closed` event says why and
//! the stream ends (a reconnect with the same token then gets 401).

use super::visible_tenant;
use crate::auth::Principal;
use crate::hub::{Hub, visible};
use crate::model::StatusEvent;
use crate::problem::{Path, Problem, Query, Result};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Resume {
    /// Same as the Last-Event-ID header, for clients that cannot set headers.
    #[serde(rename = "lastEventId")]
    #[param(rename = "lastEventId")]
    pub last_event_id: Option<String>,
}

/// How often a stream checks that its token still holds.
const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The last event of a stream whose token was revoked or expired.
const TOKEN_GONE: &[u8] = b"event: closed\ndata: {\"reason\":\"the token was revoked or expired\"}\n\n";

/// The bearer token of a request that passed authentication.
fn token(headers: &HeaderMap) -> String {
    let h = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    crate::auth::bearer(h).map(str::to_string).unwrap_or_default()
}

/// Counts a client for as long as its stream lives.
struct ClientGuard(Arc<Hub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stats.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The event stream: backlog, then live events, with heartbeat comments. Frames
/// are the hub's pre-rendered bytes, so a thousand clients cost a thousand
/// reference-counted writes per event, not a thousand renderings.
fn stream(s: AppState, token: String, tenant: Option<String>, last: Option<String>) -> Response {
    let hub = s.hub.clone();
    let state = s.clone();
    let start = hub.subscribe(tenant.as_deref(), last.as_deref());
    hub.stats.clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(hub.clone());
    let every = s.config.heartbeat;
    let closed = hub.closed();
    let body = async_stream::stream! {
        let _guard = guard;
        tokio::pin!(closed);
        let mut after = start.after;
        let mut rx = start.rx;
        for e in start.backlog {
            hub.stats.delivered.fetch_add(1, Ordering::Relaxed);
            yield Ok::<Bytes, Infallible>(e.frame.clone());
        }
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + TOKEN_RECHECK, TOKEN_RECHECK);
        loop {
            tokio::select! {
                _ = recheck.tick() => if state.creds.verify(&token).is_none() {
                    yield Ok(Bytes::from_static(TOKEN_GONE));
                    break;
                },
                r = rx.recv() => match r {
                    Ok(e) if e.seq > after && visible(&e, tenant.as_deref()) => {
                        after = e.seq;
                        hub.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        yield Ok(e.frame.clone());
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        // Too slow to keep up: start over from the current state.
                        let snap = hub.snapshot(tenant.as_deref());
                        after = snap.seq;
                        yield Ok(snap.frame.clone());
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = beat.tick() => yield Ok(Bytes::from_static(b": heartbeat\n\n")),
                () = &mut closed => break,
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn cursor(headers: &HeaderMap, q: Resume) -> Option<String> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string).or(q.last_event_id)
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(Resume,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    description = "Every instance's status changes (admins only), as Server-Sent Events: `snapshot`, `status`, `deleted`.",
    responses((status = 200, content_type = "text/event-stream", body = StatusEvent,
        description = "An event stream; `snapshot` events carry a SnapshotEvent, `deleted` a DeletedEvent"),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn all(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(q): Query<Resume>,
) -> Result<Response> {
    who.admin("watch every tenant's events")?;
    Ok(stream(s, token(&headers), None, cursor(&headers, q)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/events", tag = "events",
    params(("tenant" = String, Path), Resume, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    description = "The tenant's instance status changes as Server-Sent Events: `snapshot`, `status`, `deleted`.",
    responses((status = 200, content_type = "text/event-stream", body = StatusEvent),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn tenant(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Resume>,
) -> Result<Response> {
    visible_tenant(&s, &who, &tenant).await?;
    Ok(stream(s, token(&headers), Some(tenant), cursor(&headers, q)))
}
