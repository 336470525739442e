//! Watch streams: newline-delimited `{"type":…,"object":…}` events, resumable
//! from a resourceVersion, with bookmarks, timeouts, selectors, and upstream's
//! `ERROR` event carrying a 410 when the version is too old.

use super::render::Shape;
use super::{Query, Server, Target};
use crate::cluster::{ListOpts, filter_event};
use crate::error::ApiError;
use crate::registry::{ResId, ResourceDef};
use crate::store::EventType;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

fn frame(typ: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(typ.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(def: &ResourceDef, version: &str, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(version), "metadata": meta});
    frame("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

pub async fn serve(
    server: &Server,
    id: ResId,
    def: Arc<ResourceDef>,
    t: Target,
    query: &Query,
    opts: ListOpts,
    shape: Shape,
) -> Result<Response, ApiError> {
    let timeout = match query.get("timeoutSeconds") {
        None | Some("") => Duration::from_secs(1800),
        Some(s) => Duration::from_secs(
            s.parse::<u64>().map_err(|_| ApiError::bad_request(format!("timeoutSeconds: invalid value {s:?}")))?,
        ),
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.get("sendInitialEvents").map(str::to_string);
    if send_initial.as_deref() == Some("true") {
        if !bookmarks {
            return Err(ApiError::invalid(
                "",
                "ListOptions",
                "",
                vec![crate::error::FieldError::forbidden(
                    "allowWatchBookmarks",
                    "allowWatchBookmarks required when sendInitialEvents is specified",
                )],
            ));
        }
        if query.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::invalid(
                "",
                "ListOptions",
                "",
                vec![crate::error::FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )],
            ));
        }
    }
    let ns = t.namespace.clone();
    let rv = opts.resource_version.clone();
    let start = server.cluster.watch_start(id, ns.as_deref(), rv.as_deref(), &opts.label, &opts.field)?;
    let version = t.version.clone();
    let shutdown = server.shutdown.clone();
    let cluster = server.cluster.clone();
    let interval = server.cluster.config.bookmark_interval;
    let rv_unset = rv.as_deref().is_none_or(|r| r.is_empty() || r == "0");
    let guard = crate::cluster::WatchGuard::new(cluster.clone(), &def.plural);
    let stream = async_stream::stream! {
        let _guard = guard;
        let mut start = match start {
            Ok(s) => s,
            Err(gone) => {
                yield Ok::<Bytes, Infallible>(frame("ERROR", &serde_json::to_vec(&gone.status()).unwrap_or_default()));
                return;
            }
        };
        let skip_initial = rv_unset && send_initial.as_deref() == Some("false");
        let mut last_rv = start.rv;
        if !skip_initial {
            for (typ, o) in start.initial.drain(..) {
                if !rv_unset {
                    last_rv = o.rv;
                }
                yield Ok(frame(typ.as_str(), &shape.render(&def, &version, &o)));
            }
        }
        if rv_unset {
            last_rv = start.rv;
        }
        if send_initial.as_deref() == Some("true") {
            yield Ok(bookmark(&def, &version, start.rv, true));
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                ev = start.rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv && !rv_unset {
                            continue;
                        }
                        if ev.res != id || ns.as_deref().is_some_and(|n| n != &*ev.ns) {
                            continue;
                        }
                        if let Some((typ, o)) = filter_event(&def, &ev, &opts.label, &opts.field) {
                            last_rv = ev.rv;
                            let body = if typ == EventType::Deleted && o.rv != ev.rv {
                                let mut v = o.value();
                                v["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                                match shape {
                                    Shape::Whole => serde_json::to_vec(&v).unwrap_or_default(),
                                    Shape::Metadata => Shape::metadata_of(v),
                                }
                            } else {
                                shape.render(&def, &version, &o)
                            };
                            yield Ok(frame(typ.as_str(), &body));
                        }
                    }
                    // Too slow to keep up: end the stream; the client resumes from its last rv.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    // Nothing queued for us: every change up to the current rv was seen.
                    // (The rv is read first: writers publish under the same lock, so an
                    // empty queue afterwards means nothing up to it is pending.)
                    let global = cluster.current_rv();
                    let cur = if start.rx.is_empty() { global.max(last_rv) } else { last_rv };
                    last_rv = cur;
                    yield Ok(bookmark(&def, &version, cur, false));
                }
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
