//! The web console: a page, a script and a stylesheet compiled into the
//! binary (no build step, no CDN), served under `/ui/` with a strict
//! Content-Security-Policy. The console reads and writes only through the
//! public API with the token its user gives it, so it can show and do
//! exactly what that token may; these routes themselves carry no data and
//! need no token.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Only this origin's script and stylesheet; no inline code, no frames, no
/// forms posted elsewhere (the console's requests are `fetch`es to this
/// origin); images from this origin or from blobs the script made of API
/// answers (a VPN client's QR code).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes: `/` and `/ui` lead to `/ui/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/ui/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/console.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Compiled in: a new binary is the only new version; revalidated, as
    // the URLs do not change with it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_console_is_served_with_a_strict_policy() {
        for (path, kind) in
            [("/ui/", "text/html"), ("/ui/console.js", "text/javascript"), ("/ui/console.css", "text/css")]
        {
            let r = routes::<()>().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
        for path in ["/", "/ui"] {
            let r = routes::<()>().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!((r.status().as_u16(), r.headers()[header::LOCATION].to_str().unwrap()), (303, "/ui/"));
        }
        // Nothing inline that the policy would block, and no token in a URL.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        assert!(!SCRIPT.contains("?token=") && !SCRIPT.contains("innerHTML"));
    }
}
