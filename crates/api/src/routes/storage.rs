//! `/v1/tenants/{tenant}/storage/files…` and
//! `/v1/tenants/{tenant}/storage/groups/{group}/files…`: the file browser.
//! List, download (with ranges), upload (streamed, at most
//! `--files-max-upload`), delete and make directories in the tenant's own
//! volume or a group volume it is a member of.
//!
//! Paths are checked here before anything else happens (a refused path
//! starts no server); the tenant's file server checks them again and
//! resolves them beneath the volume's root. Downloads are always
//! attachments of type `application/octet-stream` in a sandbox, so an HTML
//! file a tenant uploads never runs as a page of this origin.

use super::visible_tenant;
use crate::auth::Principal;
use crate::file_servers::{Endpoint, limited};
use crate::problem::{Json, Path, Problem, Query, Result};
use crate::state::{AppState, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use files::protocol::{Failure, HOME, Listing, group_volume};
use files::{Kind, VolPath};
use resources::Tenant;
use resources::tenant::FilesAccess;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use utoipa::{IntoParams, ToSchema};

/// A file or directory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    pub name: String,
    /// File, Directory, Symlink or Other.
    pub kind: String,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Last modification (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

/// A directory of a volume.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileListing {
    pub tenant: String,
    /// `home` (the tenant's own volume) or `group-NAME`.
    pub volume: String,
    /// The directory, from the volume's root.
    pub path: String,
    pub read_only: bool,
    /// The first 10,000 entries by name.
    pub entries: Vec<FileEntry>,
    /// Whether the directory holds more entries than are listed.
    pub truncated: bool,
}

impl From<files::Entry> for FileEntry {
    fn from(e: files::Entry) -> Self {
        let kind = match e.kind {
            Kind::File => "File",
            Kind::Directory => "Directory",
            Kind::Symlink => "Symlink",
            Kind::Other => "Other",
        };
        Self { name: e.name, kind: kind.into(), size: e.size, modified: e.modified }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// A path in the volume, from its root (`/` or empty for the root; at most 4096 bytes, names at most 255; no `..`, NUL or control characters).
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's path in the volume; its directory must exist.
    pub path: String,
    /// Replace a file already there (default: 409 if there is one).
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The file or directory's path in the volume.
    pub path: String,
    /// Delete a directory with all it holds (default: only an empty one).
    #[serde(default)]
    pub recursive: bool,
}

/// The tenant, volume and checked path a request is about.
struct Target {
    tenant: Arc<Tenant>,
    volume: String,
    path: VolPath,
}

async fn target(
    s: &Shared,
    who: &Principal,
    tenant: &str,
    group: Option<&str>,
    raw: &str,
    write: bool,
) -> Result<Target> {
    let t = visible_tenant(s, who, tenant).await?;
    super::may_start(&t, tenant)?;
    match t.spec.storage.files {
        FilesAccess::Disabled => {
            let p = Problem::of_status(
                403,
                "files-disabled",
                format!("tenant {tenant:?} has the file browser off (spec.storage.files: Disabled)"),
            );
            return Err(p);
        }
        FilesAccess::ReadOnly if write => {
            let p = Problem::of_status(
                403,
                "read-only",
                format!("tenant {tenant:?}'s storage is read-only here (spec.storage.files: ReadOnly)"),
            );
            return Err(p);
        }
        _ => {}
    }
    let volume = match group {
        Some(g) if t.spec.groups.iter().any(|m| m == g) => group_volume(g),
        Some(g) => {
            let mut p = Problem::not_found("group volume", g);
            p.detail = format!("tenant {tenant:?} is not a member of group {g:?} (spec.groups)");
            return Err(p);
        }
        None if !t.spec.storage.enabled => {
            let mut p = Problem::not_found("volume", HOME);
            p.detail = format!("tenant {tenant:?} has no volume (spec.storage.enabled is false)");
            return Err(p);
        }
        None => HOME.to_string(),
    };
    let path = VolPath::parse(raw).map_err(|e| Problem::bad_request(e.to_string()).field("path"))?;
    Ok(Target { tenant: t, volume, path })
}

impl Target {
    fn lookup<'a>(&self, s: &'a Shared) -> crate::file_servers::Lookup<'a> {
        crate::file_servers::Lookup {
            client: &s.client,
            tenants: &s.tenants,
            namespace: self.ns(s),
            idle: s.settings().files_idle,
        }
    }
    fn url(&self, e: &Endpoint, op: &str) -> String {
        format!("{}/v1/volumes/{}/{op}", e.base, self.volume)
    }
    fn ns(&self, s: &Shared) -> String {
        s.namespace(&kube::ResourceExt::name_any(self.tenant.as_ref()))
    }
}

/// Sends a request built for the tenant's file server; one that cannot
/// connect is tried once more with a fresh look at where the server is.
async fn send(
    s: &Shared,
    t: &Target,
    build: impl Fn(&Endpoint) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response> {
    for attempt in 0..2 {
        let e = s.file_servers.endpoint(&t.lookup(s), &t.tenant).await?;
        match build(&e).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                // A new token (the server was made again): look again.
                s.file_servers.forget(&t.ns(s));
                if attempt == 1 {
                    return Err(Problem::unavailable("the file server did not take its token; try again"));
                }
            }
            Ok(r) => return Ok(r),
            Err(err) if attempt == 0 && (err.is_connect() || err.is_timeout()) => s.file_servers.forget(&t.ns(s)),
            Err(err) => return Err(Problem::unavailable(format!("the file server did not answer: {err}"))),
        }
    }
    Err(Problem::unavailable("the file server did not answer; try again"))
}

/// The problem a file server's failure answer says.
async fn failure(r: reqwest::Response) -> Problem {
    let status = r.status().as_u16();
    match r.json::<Failure>().await {
        Ok(f) => {
            let p = Problem::of_status(status, &f.reason, f.message);
            if f.reason == "bad-path" { p.field("path") } else { p }
        }
        Err(_) => Problem::of_status(502, "file-server", format!("the file server answered {status}")),
    }
}

async fn do_list(
    s: &Shared,
    who: &Principal,
    tenant: &str,
    group: Option<&str>,
    q: PathQuery,
) -> Result<Json<FileListing>> {
    let t = target(s, who, tenant, group, &q.path, false).await?;
    let p = t.path.to_string();
    let r =
        send(s, &t, |e| s.file_servers.http.get(t.url(e, "list")).bearer_auth(&e.token).query(&[("path", &p)])).await?;
    if !r.status().is_success() {
        return Err(failure(r).await);
    }
    let l: Listing = r
        .json()
        .await
        .map_err(|e| Problem::of_status(502, "file-server", format!("the file server's listing: {e}")))?;
    Ok(Json(FileListing {
        tenant: tenant.to_string(),
        volume: t.volume,
        path: l.path,
        read_only: t.tenant.spec.storage.files == FilesAccess::ReadOnly,
        entries: l.entries.into_iter().map(FileEntry::from).collect(),
        truncated: l.truncated,
    }))
}

/// `attachment; filename="…"` with the name made safe for the header, and
/// the exact name in `filename*` (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let plain: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn do_download(
    s: &Shared,
    who: &Principal,
    tenant: &str,
    group: Option<&str>,
    q: PathQuery,
    headers: &HeaderMap,
) -> Result<Response> {
    let t = target(s, who, tenant, group, &q.path, false).await?;
    let p = t.path.to_string();
    let range = headers.get(header::RANGE).cloned();
    let r = send(s, &t, |e| {
        let mut b = s.file_servers.http.get(t.url(e, "content")).bearer_auth(&e.token).query(&[("path", &p)]);
        if let Some(v) = &range {
            b = b.header(header::RANGE, v.clone());
        }
        b
    })
    .await?;
    if !r.status().is_success() {
        let status = r.status().as_u16();
        let content_range = r.headers().get(header::CONTENT_RANGE).cloned();
        let mut resp = failure(r).await.into_response();
        if status == 416
            && let Some(v) = content_range
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(resp);
    }
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::OK);
    let mut out = Response::builder().status(status);
    for h in [header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ACCEPT_RANGES] {
        if let Some(v) = r.headers().get(&h) {
            out = out.header(h, v.clone());
        }
    }
    let out = out
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_DISPOSITION, disposition(t.path.name().unwrap_or("download")))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'")
        .body(Body::from_stream(r.bytes_stream()))
        .map_err(|e| Problem::internal(e.to_string()))?;
    Ok(out)
}

async fn do_upload(
    s: &Shared,
    who: &Principal,
    tenant: &str,
    group: Option<&str>,
    q: UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let t = target(s, who, tenant, group, &q.path, true).await?;
    let path = t.path.clone().named("written").map_err(|e| Problem::bad_request(e.to_string()).field("path"))?;
    let limit = s.settings().files_max_upload;
    let too_large =
        || Problem::of_status(413, "too-large", format!("an upload may be at most {limit} bytes (--files-max-upload)"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let over = Arc::new(AtomicBool::new(false));
    let stream = limited(body.into_data_stream(), limit, over.clone());
    // The body can be sent once: no second try with another address.
    let e = s.file_servers.endpoint(&t.lookup(s), &t.tenant).await?;
    let p = path.to_string();
    let sent = s
        .file_servers
        .http
        .put(t.url(&e, "content"))
        .bearer_auth(&e.token)
        .query(&[("path", p.as_str()), ("replace", if q.replace { "true" } else { "false" })])
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if over.load(Ordering::Relaxed) {
        return Err(too_large());
    }
    let r = match sent {
        Ok(r) => r,
        Err(err) => {
            if err.is_connect() {
                s.file_servers.forget(&t.ns(s));
            }
            return Err(Problem::unavailable(format!("the upload did not reach the file server: {err}")));
        }
    };
    if !r.status().is_success() {
        return Err(failure(r).await);
    }
    let entry: files::Entry = r.json().await.map_err(|e| Problem::of_status(502, "file-server", e.to_string()))?;
    Ok((StatusCode::CREATED, Json(FileEntry::from(entry))).into_response())
}

async fn do_delete(
    s: &Shared,
    who: &Principal,
    tenant: &str,
    group: Option<&str>,
    q: DeleteQuery,
) -> Result<StatusCode> {
    let t = target(s, who, tenant, group, &q.path, true).await?;
    let path = t.path.clone().named("deleted").map_err(|e| Problem::bad_request(e.to_string()).field("path"))?;
    let p = path.to_string();
    let recursive = if q.recursive { "true" } else { "false" };
    let r = send(s, &t, |e| {
        s.file_servers
            .http
            .delete(t.url(e, "entry"))
            .bearer_auth(&e.token)
            .query(&[("path", p.as_str()), ("recursive", recursive)])
    })
    .await?;
    if !r.status().is_success() {
        return Err(failure(r).await);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn do_mkdir(s: &Shared, who: &Principal, tenant: &str, group: Option<&str>, q: PathQuery) -> Result<Response> {
    let t = target(s, who, tenant, group, &q.path, true).await?;
    let path = t.path.clone().named("made").map_err(|e| Problem::bad_request(e.to_string()).field("path"))?;
    let p = path.to_string();
    let r = send(s, &t, |e| s.file_servers.http.post(t.url(e, "mkdir")).bearer_auth(&e.token).query(&[("path", &p)]))
        .await?;
    if !r.status().is_success() {
        return Err(failure(r).await);
    }
    let entry: files::Entry = r.json().await.map_err(|e| Problem::of_status(502, "file-server", e.to_string()))?;
    Ok((StatusCode::CREATED, Json(FileEntry::from(entry))).into_response())
}

// The routes: the tenant's own volume, then a group's. Each pair differs
// only in the path (utoipa documents one path per handler).

#[utoipa::path(get, path = "/v1/tenants/{tenant}/storage/files", tag = "files", params(("tenant" = String, Path), PathQuery),
    description = "Lists a directory of the tenant's volume. The first request after a while starts the tenant's file server \
        (a pod in its namespace, counted in its quota); it stops after --files-idle without requests.",
    responses((status = 200, body = FileListing), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Json<FileListing>> {
    do_list(&s, &who, &tenant, None, q).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/storage/groups/{group}/files", tag = "files",
    params(("tenant" = String, Path), ("group" = String, Path), PathQuery),
    description = "Lists a directory of a group volume the tenant is a member of (spec.groups).",
    responses((status = 200, body = FileListing), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn group_list(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, group)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Result<Json<FileListing>> {
    do_list(&s, &who, &tenant, Some(&group), q).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/storage/files/content", tag = "files", params(("tenant" = String, Path), PathQuery),
    description = "Downloads a file, as an attachment; one `Range: bytes=…` range answers 206.",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 416, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn download(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    do_download(&s, &who, &tenant, None, q, &headers).await
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/storage/groups/{group}/files/content", tag = "files",
    params(("tenant" = String, Path), ("group" = String, Path), PathQuery),
    description = "Downloads a file of a group volume, as an attachment; one `Range: bytes=…` range answers 206.",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 416, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn group_download(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, group)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    do_download(&s, &who, &tenant, Some(&group), q, &headers).await
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/storage/files/content", tag = "files", params(("tenant" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes (at most --files-max-upload)"),
    description = "Uploads a file, streamed; it appears whole when the upload ends, and not at all if it fails.",
    responses((status = 201, body = FileEntry), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem), (status = 507, body = Problem, description = "The volume is full")))]
pub async fn upload(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    do_upload(&s, &who, &tenant, None, q, &headers, body).await
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/storage/groups/{group}/files/content", tag = "files",
    params(("tenant" = String, Path), ("group" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes (at most --files-max-upload)"),
    description = "Uploads a file to a group volume, streamed; it appears whole when the upload ends, and not at all if it fails.",
    responses((status = 201, body = FileEntry), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem), (status = 507, body = Problem, description = "The volume is full")))]
pub async fn group_upload(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, group)): Path<(String, String)>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    do_upload(&s, &who, &tenant, Some(&group), q, &headers, body).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/storage/files", tag = "files", params(("tenant" = String, Path), DeleteQuery),
    description = "Deletes a file, an empty directory, or with recursive=true a directory and all it holds. A symbolic link is deleted, never what it points at.",
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode> {
    do_delete(&s, &who, &tenant, None, q).await
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/storage/groups/{group}/files", tag = "files",
    params(("tenant" = String, Path), ("group" = String, Path), DeleteQuery),
    description = "Deletes a file or directory of a group volume (a directory with content needs recursive=true).",
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn group_delete(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, group)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode> {
    do_delete(&s, &who, &tenant, Some(&group), q).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/storage/files/mkdir", tag = "files", params(("tenant" = String, Path), PathQuery),
    description = "Makes a directory (its parent must exist).",
    responses((status = 201, body = FileEntry), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem),
        (status = 507, body = Problem)))]
pub async fn mkdir(
    State(s): State<AppState>,
    who: Principal,
    Path(tenant): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response> {
    do_mkdir(&s, &who, &tenant, None, q).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/storage/groups/{group}/files/mkdir", tag = "files",
    params(("tenant" = String, Path), ("group" = String, Path), PathQuery),
    description = "Makes a directory in a group volume (its parent must exist).",
    responses((status = 201, body = FileEntry), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem),
        (status = 507, body = Problem)))]
pub async fn group_mkdir(
    State(s): State<AppState>,
    who: Principal,
    Path((tenant, group)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Result<Response> {
    do_mkdir(&s, &who, &tenant, Some(&group), q).await
}
