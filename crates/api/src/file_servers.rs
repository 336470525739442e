//! Reaching a tenant's file server (see `controller::tenant::files`) for
//! the file browser's routes.
//!
//! The first request for a tenant whose server is not running marks the
//! tenant's storage in use (the [`FILES_ACTIVE`] annotation), which makes
//! the controller start the server, and waits (a watch of the pod, at most
//! [`START_WAIT`]) until it is ready. Later requests re-mark at most every
//! tenth of the idle period (5 s to 60 s apart, and at most half the period), and find the server's
//! address and token in a cache kept [`KEEP`]: a browsing tenant costs the
//! API server one write a minute, not a request per file.

use crate::problem::{Problem, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::Client;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::wait::await_condition;
use resources::Tenant;
use resources::vocabulary::{FILES_ACTIVE, FILES_SERVER, FILES_TOKEN_KEY};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server's address and token are used without another look.
const KEEP: Duration = Duration::from_secs(30);
/// How long a request waits for a server to start.
pub const START_WAIT: Duration = Duration::from_secs(25);

/// What finding a tenant's file server needs of the API's state.
pub struct Lookup<'a> {
    pub client: &'a Client,
    /// The tenants as the API's watch sees them (their status says why a server cannot start).
    pub tenants: &'a Store<Tenant>,
    /// The tenant's namespace.
    pub namespace: String,
    /// `--files-idle`.
    pub idle: Duration,
}

/// Where a file server answers, and the token it takes.
#[derive(Clone)]
pub struct Endpoint {
    pub base: String,
    pub token: String,
}

/// The file servers known lately, by namespace, and when each tenant's use
/// was last marked.
pub struct FileServers {
    known: Mutex<HashMap<String, (Endpoint, Instant)>>,
    marked: Mutex<HashMap<String, Instant>>,
    /// One look (and wait) per tenant at a time: requests that arrive
    /// together while a server starts share one watch.
    looking: crate::keylock::KeyLocks,
    pub http: reqwest::Client,
}

impl Default for FileServers {
    fn default() -> Self {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { known: Mutex::default(), marked: Mutex::default(), looking: Default::default(), http }
    }
}

impl std::fmt::Debug for FileServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileServers")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often use is marked: a tenth of the idle period, 5 s to 60 s, and
/// always well within the idle period (so a server in use never stops).
fn mark_every(idle: Duration) -> Duration {
    (idle / 10).clamp(Duration::from_secs(5), Duration::from_secs(60)).min(idle / 2)
}

/// Ready, not on its way out, and with an address to reach it at.
fn ready(p: &Pod) -> bool {
    controller::pool::claim::is_ready(p) && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
}

impl FileServers {
    fn known(&self, ns: &str) -> Option<Endpoint> {
        lock(&self.known).get(ns).filter(|(_, at)| at.elapsed() < KEEP).map(|(e, _)| e.clone())
    }

    /// Forgets the server of `ns` (it did not answer: it may have moved).
    pub fn forget(&self, ns: &str) {
        lock(&self.known).remove(ns);
    }

    /// The tenant's file server, started if it is not running.
    pub async fn endpoint(&self, s: &Lookup<'_>, t: &Tenant) -> Result<Endpoint> {
        let name = kube::ResourceExt::name_any(t);
        let ns = s.namespace.clone();
        self.mark(s, t).await?;
        if let Some(e) = self.known(&ns) {
            return Ok(e);
        }
        let _one = self.looking.lock(&ns).await;
        if let Some(e) = self.known(&ns) {
            return Ok(e);
        }
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
        let pod = match pods.get_opt(FILES_SERVER).await? {
            Some(p) if ready(&p) => p,
            _ => self.wait(s, &name, &pods).await?,
        };
        let ip = pod.status.and_then(|st| st.pod_ip).unwrap_or_default();
        let secret = Api::<Secret>::namespaced(s.client.clone(), &ns).get_opt(FILES_SERVER).await?;
        let token = secret
            .and_then(|sec| sec.data)
            .and_then(|d| d.get(FILES_TOKEN_KEY).cloned())
            .and_then(|b| String::from_utf8(b.0).ok())
            .ok_or_else(|| Problem::unavailable(format!("tenant {name:?}'s file server has no token yet")))?;
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
        let e = Endpoint { base: format!("http://{host}:{}", files::protocol::PORT), token: token.trim().to_string() };
        lock(&self.known).insert(ns, (e.clone(), Instant::now()));
        Ok(e)
    }

    /// Marks the tenant's storage in use, unless it was marked lately.
    async fn mark(&self, s: &Lookup<'_>, t: &Tenant) -> Result<()> {
        let name = kube::ResourceExt::name_any(t);
        let every = mark_every(s.idle);
        let now = jiff::Timestamp::now();
        let on_record = kube::ResourceExt::annotations(t)
            .get(FILES_ACTIVE)
            .and_then(|v| v.parse::<jiff::Timestamp>().ok())
            .is_some_and(|at| now.duration_since(at).unsigned_abs() < every);
        let here = lock(&self.marked).get(&name).is_some_and(|at| at.elapsed() < every);
        if on_record || here {
            return Ok(());
        }
        lock(&self.marked).insert(name.clone(), Instant::now());
        let patch = serde_json::json!({"metadata": {"annotations": {FILES_ACTIVE: now.round(jiff::Unit::Second).unwrap_or(now).to_string()}}});
        Api::<Tenant>::all(s.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .inspect_err(|_| {
                lock(&self.marked).remove(&name);
            })?;
        Ok(())
    }

    /// Waits for the tenant's server to be ready; a refusal the controller
    /// records on the tenant ends the wait with its reason.
    async fn wait(&self, s: &Lookup<'_>, tenant: &str, pods: &Api<Pod>) -> Result<Pod> {
        let up = await_condition(pods.clone(), FILES_SERVER, |p: Option<&Pod>| p.is_some_and(ready));
        let refused = async {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let t = s.tenants.get(&kube::runtime::reflector::ObjectRef::new(tenant));
                let f = t.as_ref().and_then(|t| t.status.as_ref()).and_then(|st| st.files.clone());
                if let Some(f) = f.filter(|f| f.phase == "Refused") {
                    return f.message.unwrap_or_default();
                }
            }
        };
        tokio::select! {
            r = tokio::time::timeout(START_WAIT, up) => match r {
                Ok(Ok(Some(p))) => Ok(p),
                Ok(_) | Err(_) => Err(starting(tenant)),
            },
            why = refused => {
                let mut p = Problem::limit("file-server-refused", format!("tenant {tenant:?}'s file server cannot start: {why}"), 30);
                if !why.contains("exceeded quota") {
                    p.status = 503;
                }
                Err(p)
            }
        }
    }
}

fn starting(tenant: &str) -> Problem {
    let mut p =
        Problem::unavailable(format!("tenant {tenant:?}'s file server is starting; try again in a few seconds"));
    p.retry_after = Some(5);
    p
}

/// A stream's chunks, counted: past `limit` bytes it ends in an error (and
/// `over` turns true), so an upload stops at the limit whatever it claimed.
pub fn limited<S, E>(
    body: S,
    limit: u64,
    over: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl futures::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>>
where
    S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let mut seen: u64 = 0;
    body.map(move |chunk| {
        let c = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
        seen = seen.saturating_add(c.len() as u64);
        if seen > limit {
            over.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(std::io::Error::other("the upload is over the limit"));
        }
        Ok(c)
    })
}
