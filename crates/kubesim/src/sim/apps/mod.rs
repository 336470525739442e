//! Apps kubesim runs for the pods it recognises, so that a client reaches
//! them at the pod's address as it would on a real cluster. There are two:
//! Paddock's file server (a container whose args start with `files-server`,
//! as `paddock files-server`), served by the same router as the real one
//! over in-memory volumes; and Jupyter Server's activity API for Jupyter
//! images ([`jupyter`]), which the Http idle signal reads.
//!
//! - Such a pod gets its IP from 127.77.0.0/16 instead of the pod range:
//!   a loopback address this machine can bind, so `podIP:port` answers.
//! - Its `--volume NAME=DIR` flags are resolved as the kubelet mounts them:
//!   the mount at DIR, its claim, the claim's PersistentVolume. A volume's
//!   content is kept per volume source (a group member's volume copies the
//!   group's source, so members share it) for as long as the simulator
//!   runs, bounded by the volume's capacity and, all volumes together, by
//!   [`CONTENT_LIMIT`].
//! - Its `--token-file` is read from the Secret volume mounted there.
//! - It stops when the pod stops. A pod whose app cannot start waits in
//!   `CrashLoopBackOff` with the reason.

mod jupyter;

use super::Sim;
use crate::cluster::Cluster;
use clap::Parser;
use files::memory::{Budget, MemoryStore};
use files::server::{Served, ServerArgs, volume_flags};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Bytes all simulated volumes may hold together.
pub const CONTENT_LIMIT: u64 = 256 << 20;

/// The range app pods get their addresses from: 127.128.0.0/9, so that
/// many simulators on one machine (tests in parallel) rarely pick the same
/// one; an address whose port is taken is never given.
const APP_BASE: u32 = 0x7f80_0000;
const APP_ADDRESSES: u32 = 1 << 23;

pub struct Apps {
    budget: Arc<Budget>,
    volumes: HashMap<String, MemoryStore>,
    running: HashMap<String, CancellationToken>,
    /// The listening socket of each app pod, bound when its address is given.
    bound: HashMap<String, std::net::TcpListener>,
}

impl Default for Apps {
    fn default() -> Self {
        Self {
            budget: Budget::new(CONTENT_LIMIT),
            volumes: HashMap::new(),
            running: HashMap::new(),
            bound: HashMap::new(),
        }
    }
}

#[derive(Parser)]
struct FilesServer {
    #[command(flatten)]
    args: ServerArgs,
}

/// The container running the file server, with its args.
fn files_container(pod: &Value) -> Option<(&Value, Vec<String>)> {
    pod.pointer("/spec/containers").and_then(Value::as_array)?.iter().find_map(|c| {
        let args: Vec<String> =
            c.get("args")?.as_array()?.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
        (args.first().map(String::as_str) == Some("files-server")).then_some((c, args))
    })
}

/// Whether kubesim runs an app for `pod`.
pub fn recognised(pod: &Value) -> bool {
    files_container(pod).is_some() || jupyter::container(pod).is_some()
}

/// The port `pod`'s app listens on.
fn port_of(pod: &Value) -> u16 {
    match files_container(pod) {
        Some((_, args)) => FilesServer::try_parse_from(&args).map_or(files::protocol::PORT, |f| f.args.listen.port()),
        None => jupyter::container(pod).map_or(jupyter::PORT, jupyter::port),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

impl Apps {
    /// A loopback address for app pod `pod`, its app's port bound there now
    /// (so no other pod, of this simulator or another, gets it).
    pub fn address(&mut self, pod: &Value) -> Result<String, String> {
        let uid = s(pod, "/metadata/uid").to_string();
        let port = port_of(pod);
        let mut last = String::new();
        for _ in 0..64 {
            let ip = Ipv4Addr::from(APP_BASE + 1 + rand::random::<u32>() % (APP_ADDRESSES - 2));
            match std::net::TcpListener::bind(SocketAddr::new(ip.into(), port)) {
                Ok(l) => {
                    self.bound.insert(uid, l);
                    return Ok(ip.to_string());
                }
                Err(e) => last = format!("cannot listen on {ip}:{port}: {e}"),
            }
        }
        Err(last)
    }

    /// Starts `pod`'s app at its IP; `Err` says why it cannot run.
    pub fn start(&mut self, sim: &Sim, pod: &Value) -> Result<(), String> {
        let uid = s(pod, "/metadata/uid").to_string();
        if self.running.contains_key(&uid) || !recognised(pod) {
            return Ok(());
        }
        let ip: Ipv4Addr = s(pod, "/status/podIP").parse().map_err(|_| "the pod has no address".to_string())?;
        let router = match jupyter::container(pod) {
            Some(c) if files_container(pod).is_none() => jupyter::router(&sim.c, pod, c)?,
            _ => self.files_router(sim, pod)?,
        };
        let port = port_of(pod);
        let bound = match self.bound.remove(&uid) {
            Some(l) => Ok(l),
            None => std::net::TcpListener::bind(SocketAddr::new(ip.into(), port)),
        };
        let listener = bound
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| format!("cannot listen on {ip}:{port}: {e}"))?;
        let stop = CancellationToken::new();
        let done = stop.clone();
        tokio::spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(async move { done.cancelled().await });
            if let Err(e) = serving.await {
                tracing::warn!(error = %e, "simulated app stopped");
            }
        });
        self.running.insert(uid, stop);
        Ok(())
    }

    /// The file server's router for `pod`, over the memory stores of its volumes.
    fn files_router(&mut self, sim: &Sim, pod: &Value) -> Result<axum::Router, String> {
        let Some((container, args)) = files_container(pod) else { return Err("no file server container".into()) };
        let parsed =
            FilesServer::try_parse_from(&args).map_err(|e| e.to_string().lines().next().unwrap_or("").to_string())?;
        let a = parsed.args;
        let mut volumes: BTreeMap<String, Arc<dyn files::Store>> = BTreeMap::new();
        for (name, dir) in volume_flags(&a.volumes)? {
            let dir = dir.to_string_lossy().to_string();
            let (store, read_only) = self.mounted(&sim.c, pod, container, &dir)?;
            let store: Arc<dyn files::Store> =
                if read_only || a.read_only { Arc::new(store.read_only()) } else { Arc::new(store) };
            volumes.insert(name, store);
        }
        let token = secret_file(&sim.c, pod, container, &a.token_file.to_string_lossy())?;
        Ok(files::server::router(Served { volumes, token: token.trim().to_string() }))
    }

    /// Stops the app of pod `uid` (gone or terminating).
    pub fn stop(&mut self, uid: &str, gone: bool) {
        if let Some(t) = self.running.remove(uid) {
            t.cancel();
        }
        if gone {
            self.bound.remove(uid);
        }
    }

    /// The memory store behind `dir` in `container`, and whether it is mounted read-only.
    fn mounted(
        &mut self,
        c: &Cluster,
        pod: &Value,
        container: &Value,
        dir: &str,
    ) -> Result<(MemoryStore, bool), String> {
        let (mount, vol) = mounted_at(pod, container, dir).ok_or_else(|| format!("nothing is mounted at {dir}"))?;
        let claim = s(vol, "/persistentVolumeClaim/claimName");
        if claim.is_empty() {
            return Err(format!("{dir}: only claims are simulated"));
        }
        let ns = s(pod, "/metadata/namespace");
        let pvc =
            c.get_value("", "persistentvolumeclaims", ns, claim).ok_or_else(|| format!("claim {claim} not found"))?;
        let pv_name = s(&pvc, "/spec/volumeName");
        let pv =
            c.get_value("", "persistentvolumes", "", pv_name).ok_or_else(|| format!("claim {claim} is not bound"))?;
        let capacity = quantity::Quantity::parse(s(&pv, "/spec/capacity/storage"))
            .and_then(|q| u64::try_from(q.0 / 1000).ok())
            .unwrap_or(0);
        let key = source_key(&pv);
        let store = self.volumes.entry(key).or_insert_with(|| MemoryStore::new(capacity, self.budget.clone())).clone();
        store.set_capacity(capacity);
        let read_only = mount["readOnly"].as_bool().unwrap_or(false)
            || vol.pointer("/persistentVolumeClaim/readOnly").and_then(Value::as_bool).unwrap_or(false);
        Ok((store, read_only))
    }
}

/// What identifies a volume's content: its source (members' copies of a
/// group volume share it), else its name.
fn source_key(pv: &Value) -> String {
    let spec = &pv["spec"];
    for (k, id) in [("hostPath", "/path"), ("local", "/path"), ("csi", "/volumeHandle"), ("nfs", "/path")] {
        if let Some(src) = spec.get(k) {
            let extra = if k == "nfs" {
                s(src, "/server")
            } else if k == "csi" {
                s(src, "/driver")
            } else {
                ""
            };
            return format!("{k}:{extra}:{}", s(src, id));
        }
    }
    format!("pv:{}", s(pv, "/metadata/name"))
}

/// The content of file `path` from the Secret volume mounted at its directory.
fn secret_file(c: &Cluster, pod: &Value, container: &Value, path: &str) -> Result<String, String> {
    let (dir, key) = path.rsplit_once('/').ok_or_else(|| format!("{path}: not a path"))?;
    let vol = mounted_at(pod, container, dir).map(|(_, v)| v);
    let secret = vol.map(|v| s(v, "/secret/secretName")).unwrap_or("");
    secret_value(c, s(pod, "/metadata/namespace"), secret, key)
        .map_err(|_| format!("open {path}: no such file or directory"))
}

/// The container's mount at `dir` and the pod's volume it mounts.
fn mounted_at<'a>(pod: &'a Value, container: &'a Value, dir: &str) -> Option<(&'a Value, &'a Value)> {
    let dir = dir.trim_end_matches('/');
    let mounts = container.get("volumeMounts").and_then(Value::as_array)?;
    let mount = mounts.iter().find(|m| s(m, "/mountPath").trim_end_matches('/') == dir)?;
    let vol = pod.pointer("/spec/volumes").and_then(Value::as_array)?.iter().find(|v| v["name"] == mount["name"])?;
    Some((mount, vol))
}

/// The text under `key` of Secret `ns/name`; `Err` says why there is none.
fn secret_value(c: &Cluster, ns: &str, name: &str, key: &str) -> Result<String, String> {
    let secret = c.get_value("", "secrets", ns, name).ok_or_else(|| format!("secret \"{name}\" not found"))?;
    let data = secret.pointer(&format!("/data/{key}")).and_then(Value::as_str);
    let data = data.ok_or_else(|| format!("couldn't find key {key} in Secret {ns}/{name}"))?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| format!("{ns}/{name}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{ns}/{name}: {key} is not text"))
}
