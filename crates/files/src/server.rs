//! The file server: [`protocol`](crate::protocol)'s routes over named
//! stores. `paddock files-server` runs it over disk stores in a tenant's
//! file-server pod; kubesim runs the same router over memory stores for the
//! pods it simulates.

use crate::path::VolPath;
use crate::protocol::{Failure, Listing, MAX_LISTED, Range, Target, range};
use crate::store::{Content, FsError, Store};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// `paddock files-server`'s flags; kubesim reads a simulated pod's args with
/// the same parser.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8090")]
    pub listen: SocketAddr,
    /// A volume served: NAME=DIRECTORY (repeatable; NAME like home or group-NAME).
    #[arg(long = "volume", value_name = "NAME=DIRECTORY", required = true)]
    pub volumes: Vec<String>,
    /// Refuse every write.
    #[arg(long)]
    pub read_only: bool,
    /// File holding the token callers must send as a bearer token.
    #[arg(long, default_value = "/var/run/paddock/files/token")]
    pub token_file: PathBuf,
}

/// The volume flags, read: names (lowercase letters, digits, `-`, at most
/// 70 characters) and their directories.
pub fn volume_flags(flags: &[String]) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for f in flags {
        let Some((name, dir)) = f.split_once('=') else {
            return Err(format!("--volume {f:?}: NAME=DIRECTORY"));
        };
        let ok = !name.is_empty()
            && name.len() <= 70
            && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !ok {
            return Err(format!("--volume {f:?}: {name:?} is not a volume name (lowercase letters, digits and -)"));
        }
        if dir.is_empty() {
            return Err(format!("--volume {f:?}: no directory"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("--volume {f:?}: {name:?} is given twice"));
        }
        out.push((name.to_string(), PathBuf::from(dir)));
    }
    Ok(out)
}

/// What a file server serves.
pub struct Served {
    pub volumes: BTreeMap<String, Arc<dyn Store>>,
    pub token: String,
}

type Shared = Arc<Served>;

/// The file server's routes.
pub fn router(served: Served) -> Router {
    let served = Arc::new(served);
    let api = Router::new()
        .route("/v1/volumes/{volume}/list", get(list))
        .route("/v1/volumes/{volume}/content", get(download).put(upload))
        .route("/v1/volumes/{volume}/entry", delete(remove))
        .route("/v1/volumes/{volume}/mkdir", post(mkdir))
        .layer(axum::middleware::from_fn_with_state(served.clone(), authorize))
        .with_state(served);
    Router::new().route("/healthz", get(|| async { "ok" })).merge(api)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// A failure answer: a status and a [`Failure`] body.
pub struct Fail {
    status: u16,
    reason: &'static str,
    message: String,
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, Json(Failure { reason: self.reason.into(), message: self.message })).into_response()
    }
}

fn fail(status: u16, reason: &'static str, message: String) -> Fail {
    Fail { status, reason, message }
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Self {
        if matches!(e, FsError::Io(..)) {
            tracing::warn!(error = %e, "file server I/O failure");
        }
        fail(e.status(), e.reason(), e.to_string())
    }
}

async fn authorize(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if s.token.is_empty() || !bool::from(given.as_bytes().ct_eq(s.token.as_bytes())) {
        return fail(401, "unauthorized", "a valid file-server token is needed".into()).into_response();
    }
    next.run(req).await
}

/// The store and checked path of a request.
fn target(s: &Served, volume: &str, raw: &str) -> Result<(Arc<dyn Store>, VolPath), Fail> {
    let store = s
        .volumes
        .get(volume)
        .cloned()
        .ok_or_else(|| fail(404, "no-volume", format!("no volume {volume:?} is served")))?;
    let path = VolPath::parse(raw).map_err(|e| fail(400, "bad-path", e.to_string()))?;
    Ok((store, path))
}

/// Runs a store operation on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, FsError> + Send + 'static) -> Result<T, Fail> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Fail::from),
        Err(e) => Err(fail(500, "io", format!("the operation stopped: {e}"))),
    }
}

type Answer = Result<Response, Fail>;

async fn list(State(s): State<Shared>, Path(volume): Path<String>, Query(q): Query<Target>) -> Answer {
    let (store, path) = target(&s, &volume, &q.path)?;
    let shown = path.to_string();
    let mut entries = blocking(move || store.list(&path)).await?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let truncated = entries.len() > MAX_LISTED;
    entries.truncate(MAX_LISTED);
    Ok(Json(Listing { path: shown, entries, truncated }).into_response())
}

async fn mkdir(State(s): State<Shared>, Path(volume): Path<String>, Query(q): Query<Target>) -> Answer {
    let (store, path) = target(&s, &volume, &q.path)?;
    let path = path.named("made").map_err(|_| fail(409, "exists", "/: already exists".into()))?;
    let e = blocking(move || store.mkdir(&path).and_then(|()| store.stat(&path))).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

async fn remove(State(s): State<Shared>, Path(volume): Path<String>, Query(q): Query<Target>) -> Answer {
    let (store, path) = target(&s, &volume, &q.path)?;
    let path = path.named("deleted").map_err(|e| fail(400, "bad-path", e.to_string()))?;
    blocking(move || store.remove(&path, q.recursive)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Bytes read at a time for a download.
const CHUNK: usize = 64 * 1024;

async fn download(
    State(s): State<Shared>,
    Path(volume): Path<String>,
    Query(q): Query<Target>,
    headers: HeaderMap,
) -> Answer {
    let (store, path) = target(&s, &volume, &q.path)?;
    let (entry, content) = blocking(move || {
        let entry = store.stat(&path)?;
        let content = store.open(&path)?;
        Ok((entry, content))
    })
    .await?;
    let len = entry.size;
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range(asked, len) {
        Range::Whole => (StatusCode::OK, 0, len),
        Range::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end.saturating_add(1)),
        Range::Unsatisfiable => {
            let mut r = fail(416, "range", format!("the file has {len} bytes")).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let mut r = Response::new(Body::from_stream(stream(content, start, end - start)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// `count` bytes of `content` from `start`, read on a blocking thread a chunk
/// at a time (a slow reader holds at most a few chunks).
fn stream(
    mut content: Box<dyn Content>,
    start: u64,
    count: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = content.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = count;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left = left.saturating_sub(n as u64);
                    if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn upload(State(s): State<Shared>, Path(volume): Path<String>, Query(q): Query<Target>, body: Body) -> Answer {
    let (store, path) = target(&s, &volume, &q.path)?;
    let path = path.named("written").map_err(|_| fail(409, "is-a-directory", "/: is a directory".into()))?;
    let replace = q.replace;
    let mut up = blocking(move || store.create(&path, replace)).await?;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        // On an error the upload is dropped: nothing of it stays.
        let chunk = chunk.map_err(|e| fail(400, "interrupted", format!("the upload stopped before its end: {e}")))?;
        up = blocking(move || up.write(&chunk).map(|()| up)).await?;
    }
    let e = blocking(move || up.commit()).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}
