//! The Http idle signal: asking an instance's own activity endpoint (a
//! template's `idle.http`, Jupyter Server's `/api/status` by default) when
//! it was last used. Asked only when the instance's idle deadline comes, so
//! an instance costs one small request to its pod per idle period, and the
//! API server a status write only when the answer moves the deadline.
//!
//! The endpoint is reached at the pod's address; the NetworkPolicy
//! `<instance>-idle-probe` (or, for a pod claimed from a warm pool, its
//! set's `<set>-idle-probe`) admits Paddock's pods on its port.

use super::context::Context;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;
use resources::template::IdleHttp;
use resources::{Instance, Template};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// How long the endpoint may take.
const TIMEOUT: Duration = Duration::from_secs(5);

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// When the instance says it was last used; `Err` says why it could not tell.
pub async fn last_used(ctx: &Context, inst: &Instance, tpl: &Template, h: &IdleHttp) -> Result<Timestamp, String> {
    let pod_tpl = h.pod_of(&tpl.spec.pods).ok_or("the template has no such pod")?;
    let port = h.port_number(pod_tpl).ok_or("the template's pod has no such port")?;
    // A warm instance's pods are its claimed set's, in the pool namespace.
    let (ns, stem) = match inst.status.as_ref().and_then(|s| s.claim.as_ref()) {
        Some(c) => (c.namespace.clone(), c.set.clone()),
        None => (inst.namespace().unwrap_or_default(), inst.name_any()),
    };
    let pod_name = format!("{stem}-{}", pod_tpl.name);
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), &ns).get_opt(&pod_name).await.map_err(|e| e.to_string())?;
    let ip =
        pod.and_then(|p| p.status).and_then(|s| s.pod_ip).ok_or_else(|| format!("pod {pod_name} has no address"))?;
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
    let url = format!("http://{host}:{port}{}", h.path);
    let mut req = http().get(&url);
    if let Some(env) = &h.token_from {
        req = req.header("authorization", format!("token {}", token(ctx, inst, tpl, &pod_tpl.name, env).await?));
    }
    let answer = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !answer.status().is_success() {
        return Err(format!("GET {url}: {}", answer.status()));
    }
    let mut body = Vec::new();
    let mut chunks = answer.bytes_stream();
    while let Some(c) = chunks.next().await {
        body.extend_from_slice(&c.map_err(|e| format!("GET {url}: {e}"))?);
        if body.len() > MAX_ANSWER {
            return Err(format!("GET {url}: the answer is over {MAX_ANSWER} bytes"));
        }
    }
    activity_in(&body, &h.field).map_err(|why| format!("GET {url}: {why}"))
}

/// The time at `field` (dots for nesting) of a JSON document.
pub fn activity_in(body: &[u8], field: &str) -> Result<Timestamp, String> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let at = field.split('.').try_fold(&doc, |v, k| v.get(k)).ok_or_else(|| format!("no field {field:?}"))?;
    let text = at.as_str().ok_or_else(|| format!("{field} is not a string"))?;
    text.parse::<Timestamp>().map_err(|e| format!("{field} {text:?} is not an RFC 3339 time: {e}"))
}

/// The value of the pod's env variable `env`: the instance's override, the
/// template's value, or the Secret it comes from (a generated one's is the
/// instance's Secret).
async fn token(ctx: &Context, inst: &Instance, tpl: &Template, pod: &str, env: &str) -> Result<String, String> {
    let var = tpl.spec.pods.iter().find(|p| p.name == pod).and_then(|p| p.env.iter().find(|e| e.name == env));
    let var = var.ok_or_else(|| format!("pod {pod} has no env variable {env}"))?;
    if let Some(v) = inst.spec.env.get(env).filter(|_| var.overridable) {
        return Ok(v.clone());
    }
    if let Some(v) = &var.value {
        return Ok(v.clone());
    }
    let (secret, key) = match &var.secret {
        Some(s) => (s.name.clone(), s.key.clone()),
        None => (format!("{}-secrets", inst.name_any()), format!("{pod}.{env}")),
    };
    let ns = inst.namespace().unwrap_or_default();
    let s = Api::<Secret>::namespaced(ctx.client.clone(), &ns).get_opt(&secret).await.map_err(|e| e.to_string())?;
    let value = s
        .and_then(|s| s.data)
        .and_then(|d| d.get(&key).cloned())
        .ok_or_else(|| format!("{env}: no {key} in Secret {secret}"))?;
    String::from_utf8(value.0).map_err(|_| format!("{env} is not text"))
}

#[cfg(test)]
mod tests {
    use super::activity_in;

    #[test]
    fn the_last_activity_is_read_from_the_field() {
        let jupyter = br#"{"started": "2024-10-07T10:00:00.000000Z", "last_activity": "2024-10-07T12:34:56.789012Z", "connections": 1, "kernels": 1}"#;
        assert_eq!(activity_in(jupyter, "last_activity").unwrap().to_string(), "2024-10-07T12:34:56.789012Z");
        assert_eq!(
            activity_in(br#"{"a": {"b": "2024-10-07T12:00:00+02:00"}}"#, "a.b").unwrap().to_string(),
            "2024-10-07T10:00:00Z"
        );
        assert!(activity_in(b"<html>", "x").unwrap_err().contains("not JSON"));
        assert!(activity_in(br#"{"x": 1}"#, "y").unwrap_err().contains("no field"));
        assert!(activity_in(br#"{"x": 1}"#, "x").unwrap_err().contains("not a string"));
        assert!(activity_in(br#"{"x": "yesterday"}"#, "x").unwrap_err().contains("RFC 3339"));
    }
}
