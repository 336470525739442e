//! Template: the task spec an instance is started from — pods, networks,
//! sandboxing, exposure, lifetime and per-instance generated secrets.

use crate::FieldProblem;
use k8s_openapi::api::core::v1::{Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Linux capabilities by the names Kubernetes takes (without `CAP_`).
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// The network whose pods the tenant's VPN reaches.
pub const TEAMNET: &str = "teamnet";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "Template",
    plural = "templates",
    shortname = "tpl",
    status = "TemplateStatus",
    printcolumn = r#"{"name": "Pods", "type": "integer", "jsonPath": ".status.pods"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// The pods of one instance.
    #[schemars(length(min = 1))]
    pub pods: Vec<PodTemplate>,
    /// Named networks: pods on the same network may talk on their declared ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// RuntimeClass (default: the installation's, e.g. gvisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Node role the pods go to (task or shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role: Option<crate::tenant::NodeRole>,
    /// Lifetime of an instance, e.g. "2h" (none: until stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Longest lifetime a renewal may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    /// Instances of this template one tenant may run at once.
    #[serde(default = "one")]
    pub max_per_tenant: u32,
    /// How exposed ports are reachable: ClusterIP (default), NodePort, LoadBalancer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposure: Vec<Exposure>,
    /// Pre-started pod sets in the pool namespace, claimed by new instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPool>,
    /// What happens to an instance nobody uses: suspended or stopped after a
    /// period without a sign of use (none: it runs until its ttl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
}

/// Idle reaping: an instance with no sign of use for `after` is suspended
/// (its pods go, everything else stays) or stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Idle {
    /// How long without a sign of use, e.g. "30m" (at least 1s).
    pub after: String,
    /// Suspend (default) or Stop.
    #[serde(default)]
    pub action: IdleAction,
    /// What counts as use: Heartbeat (default; `POST .../heartbeat`), or
    /// Http (the instance's own activity endpoint, `http`). Connections is
    /// not available and refused (docs/idle.md says why).
    #[serde(default)]
    pub signal: IdleSignal,
    /// Whether a heartbeat or renewal of a suspended instance resumes it.
    #[serde(default)]
    pub resume_on_use: bool,
    /// With signal Http: the endpoint that says when the instance was last
    /// used (Jupyter Server's `/api/status` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<IdleHttp>,
}

/// An activity endpoint of one of the template's pods: a JSON document
/// with the time of the last use (RFC 3339) in `field`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleHttp {
    /// The pod that answers (default: the template's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's port: one of its ports by name, or a number.
    pub port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    /// The path (default `/api/status`).
    #[serde(default = "status_path")]
    pub path: String,
    /// The JSON field with the last use, dots for nesting (default `last_activity`).
    #[serde(default = "activity_field")]
    pub field: String,
    /// An env variable of the pod whose value is sent as
    /// `Authorization: token <value>` (like Jupyter's `JUPYTER_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from: Option<String>,
}

fn status_path() -> String {
    "/api/status".into()
}
fn activity_field() -> String {
    "last_activity".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IdleAction {
    #[default]
    Suspend,
    Stop,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IdleSignal {
    #[default]
    Heartbeat,
    Http,
    Connections,
}

/// Shortest idle period a template may set.
pub const MIN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Idle {
    /// The idle period, when it is a valid one.
    pub fn period(&self) -> Option<std::time::Duration> {
        crate::duration::parse_exact(&self.after).ok().filter(|d| *d >= MIN_IDLE)
    }

    /// What is wrong with it, each problem naming its field.
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        match crate::duration::within(
            "spec.idle.after",
            &self.after,
            crate::duration::LONGEST,
            &crate::duration::longest_bound(),
        ) {
            Ok(d) if d < MIN_IDLE => out.push(FieldProblem::new("spec.idle.after", "must be at least 1s")),
            Ok(_) => {}
            Err(p) => out.push(p),
        }
        match (self.signal, &self.http) {
            (IdleSignal::Connections, _) => out.push(FieldProblem::new(
                "spec.idle.signal",
                "Connections is not available: Paddock cannot count a pod's connections without an agent on \
                 every node; use Heartbeat, or Http with an activity endpoint",
            )),
            (IdleSignal::Http, None) => out.push(FieldProblem::new(
                "spec.idle.http",
                "needed with signal Http: at least the port of the activity endpoint (path and field default to \
                 Jupyter's /api/status and last_activity)",
            )),
            (IdleSignal::Heartbeat, Some(_)) => {
                out.push(FieldProblem::new("spec.idle.http", "only read with signal Http"));
            }
            _ => {}
        }
        out
    }

    /// The problems of `http` against the template's pods; `fixed_only`:
    /// whether the pods' env holds fixed values only (a warm pool's pods
    /// start before their claim, and without `personalize: api` never get
    /// an instance's values).
    pub fn http_problems(&self, pods: &[PodTemplate], fixed_only: bool) -> Vec<FieldProblem> {
        let Some(h) = self.http.as_ref().filter(|_| self.signal == IdleSignal::Http) else { return Vec::new() };
        let mut out = Vec::new();
        let f = |k: &str| format!("spec.idle.http.{k}");
        let Some(pod) = h.pod_of(pods) else {
            out.push(FieldProblem::new(f("pod"), format!("no pod named {:?}", h.pod.as_deref().unwrap_or(""))));
            return out;
        };
        if h.port_number(pod).is_none() {
            out.push(FieldProblem::new(
                f("port"),
                "must be one of the pod's ports by name, or a number from 1 to 65535",
            ));
        }
        let path_ok = h.path.starts_with('/')
            && h.path.len() <= 1024
            && !h.path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#');
        if !path_ok {
            out.push(FieldProblem::new(
                f("path"),
                "must start with / and be at most 1024 characters, without spaces or #",
            ));
        }
        let field_ok = !h.field.is_empty()
            && h.field.len() <= 256
            && h.field
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        if !field_ok {
            out.push(FieldProblem::new(f("field"), "must be a JSON field name, dots for nesting (like last_activity)"));
        }
        if let Some(env) = &h.token_from {
            match pod.env.iter().find(|e| &e.name == env) {
                None => out
                    .push(FieldProblem::new(f("tokenFrom"), format!("pod {:?} has no env variable {env:?}", pod.name))),
                // A warm pod starts before its claim: only fixed values are in its env.
                Some(e) if fixed_only && (e.value.is_none() || e.overridable) => out.push(FieldProblem::new(
                    f("tokenFrom"),
                    format!(
                        "{env:?} has no fixed value, and a warm pool's pods have only those in their env \
                         (unless spec.warmPool.personalize is api)"
                    ),
                )),
                Some(_) => {}
            }
        }
        out
    }
}

impl IdleHttp {
    /// The pod that answers.
    pub fn pod_of<'a>(&self, pods: &'a [PodTemplate]) -> Option<&'a PodTemplate> {
        match &self.pod {
            Some(name) => pods.iter().find(|p| &p.name == name),
            None => pods.first(),
        }
    }

    /// The port's number on `pod`.
    pub fn port_number(&self, pod: &PodTemplate) -> Option<u16> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match &self.port {
            IntOrString::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0),
            IntOrString::String(name) => pod.ports.iter().find(|p| &p.name == name).map(|p| p.port),
        }
    }
}

fn one() -> u32 {
    1
}

/// A warm pool: complete pod sets of the template kept Ready in the pool
/// namespace, handed to instances at creation instead of a cold start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmPool {
    /// Ready pod sets to keep (0 drains the pool).
    pub size: u32,
    /// At most this many pod sets starting (not yet Ready) at once; the pool
    /// never holds more than `size + maxUnready` unclaimed sets.
    #[serde(default = "default_max_unready")]
    pub max_unready: u32,
    /// Pod sets created per second at most while refilling.
    #[serde(default = "default_refill")]
    pub refill_per_second: u32,
    /// How per-instance values (generated, overridable and secret-sourced
    /// variables) reach a claimed pod: `none` (the template has none) or
    /// `api` (the pod asks `GET /v1/claim` with its pool token).
    #[serde(default)]
    pub personalize: Personalize,
    /// Pre-pull the template's images on every task node with a DaemonSet.
    #[serde(default)]
    pub prepull: bool,
}

fn default_max_unready() -> u32 {
    5
}

fn default_refill() -> u32 {
    100
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Personalize {
    #[default]
    None,
    Api,
}

/// Largest pool a template may ask for.
pub const MAX_POOL_SIZE: u32 = 1000;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub mounts: Mounts,
    /// Networks this pod is on (declared in spec.networks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Explicit relaxations of the hardened defaults.
    #[serde(default)]
    pub security: Security,
    /// Writable scratch space (emptyDir) with a size limit, mounted at /tmp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_size: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A key of a Secret in the tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// A value generated once per instance and kept in the instance's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
    /// Whether an Instance may override the value.
    #[serde(default)]
    pub overridable: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Generate {
    /// `length` characters from `charset` (default alphanumeric).
    Random {
        length: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charset: Option<String>,
    },
    /// A flag: `format` with `%s` replaced by 32 random hex characters.
    Flag { format: String },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub name: String,
    pub port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Whether the port gets a Service beyond the pod's networks.
    #[serde(default)]
    pub expose: bool,
}

fn tcp() -> String {
    "TCP".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mounts {
    /// Mount the tenant's volume at this path (usually /data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_storage: Option<String>,
    /// Mount the groups' shared volumes under this path (usually /shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_storage: Option<String>,
    /// Files from a per-instance ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigFiles>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigFiles {
    #[serde(default = "config_path")]
    pub path: String,
    pub files: BTreeMap<String, String>,
}

fn config_path() -> String {
    "/config".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// Allow running as root (default: runAsNonRoot).
    #[serde(default)]
    pub run_as_root: bool,
    /// Allow a writable root filesystem (default: read-only).
    #[serde(default)]
    pub writable_root_filesystem: bool,
    /// Capabilities to add back (default: all dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The user id the containers run as (default: [`DEFAULT_UID`], unless
    /// `runAsRoot`). Images that need their own user name it here (postgres: 999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
}

/// The user id a template's containers run as when it names none: a
/// kubelet refuses `runAsNonRoot` for an image whose user is root unless a
/// user id is given, and most images' user is root.
pub const DEFAULT_UID: i64 = 65532;

impl Security {
    /// The user id the containers run as; `None` for root.
    pub fn uid(&self) -> Option<i64> {
        (!self.run_as_root).then(|| self.run_as_user.unwrap_or(DEFAULT_UID))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub pod: String,
    pub port: String,
    #[serde(rename = "type")]
    pub type_: ExposureType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExposureType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The warm pool as the pool reconciler last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Unclaimed pod sets whose pods are all Ready.
    pub ready: u32,
    /// Unclaimed pod sets still starting.
    pub starting: u32,
    /// Pod sets of this template currently claimed by instances.
    #[serde(default)]
    pub claimed: u32,
    /// Pod sets replaced because they failed to become Ready, since the controller started.
    #[serde(default)]
    pub failures: u64,
    /// `Ready` (the pool is full), `Filling`, `Failing` (sets do not become
    /// Ready; replacements back off), `Refused` (the template cannot be pooled),
    /// `Blocked` (the pool namespace refused new pods, e.g. its quota).
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Parses durations like `90s`, `15m`, `2h`, `1h30m`, `1d`; a well-formed
/// one longer than [`crate::duration::LONGEST`] reads as that (see [`crate::duration`]).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    crate::duration::parse(s)
}

fn port_name(s: &str) -> bool {
    crate::is_dns_label(s) && s.len() <= 15 && s.bytes().any(|c| c.is_ascii_lowercase())
}

/// What a ConfigMap may hold in all (upstream's `MaxSecretSize`).
const CONFIG_MAX_BYTES: usize = 1024 * 1024;

/// A ConfigMap key, as the API server checks it (`IsConfigMapKey`).
fn config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && !s.starts_with("..")
        && s != "."
}

/// Directories no mount may cover or sit in: the image's system files, the
/// kernel's and the kubelet's (the service account token lives under
/// `/var/run/secrets`).
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
    "/var/lib/kubelet",
];

/// What is wrong with a mount path, if anything: it must be absolute and
/// plain (no `.`/`..` parts, no empty parts), not `/`, and outside
/// [`SYSTEM_DIRS`].
fn mount_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} must be an absolute path"));
    }
    if path == "/" {
        return Some("\"/\" would cover the whole filesystem".to_string());
    }
    let parts: Vec<&str> = path[1..].trim_end_matches('/').split('/').collect();
    if path.len() > 1024
        || path.chars().any(char::is_control)
        || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Some(format!(
            "{path:?} must be a plain absolute path (no '.', '..' or empty parts, no control characters)"
        ));
    }
    let plain = format!("/{}", parts.join("/"));
    SYSTEM_DIRS
        .iter()
        .find(|d| plain == **d || plain.starts_with(&format!("{d}/")))
        .map(|d| format!("{path:?} is in {d}, a system directory; choose a path such as /data"))
}

/// Whether `s` is an image reference as written (`registry/path:tag@digest`):
/// letters, digits and `._-/:@`, at most 4096 characters.
fn image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 4096
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/' | b':' | b'@'))
}

/// A DNS subdomain (the names of Secrets): lowercase letters, digits, '-'
/// and '.', at most 253 characters.
fn dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(crate::is_dns_label)
}

/// The rules a pod of a template keeps whatever the installation allows:
/// a well-formed image, known capabilities, probes that go to the pod
/// itself, mounts outside system directories and apart from each other,
/// Secret references by plain name.
fn hardening_problems(f: &str, p: &PodTemplate) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    if !image_reference(&p.image) {
        out.push(FieldProblem::new(
            format!("{f}.image"),
            format!("{:?} is not an image reference (letters, digits and ._-/:@ only)", p.image),
        ));
    }
    match p.security.run_as_user {
        Some(0) => out.push(FieldProblem::new(
            format!("{f}.security.runAsUser"),
            "0 is root; a template that must run as root says runAsRoot: true",
        )),
        Some(u) if !(1..=2_147_483_647).contains(&u) => out.push(FieldProblem::new(
            format!("{f}.security.runAsUser"),
            format!("{u} is not a user id (1 to 2147483647)"),
        )),
        Some(_) if p.security.run_as_root => {
            out.push(FieldProblem::new(format!("{f}.security.runAsUser"), "runAsUser and runAsRoot exclude each other"))
        }
        _ => {}
    }
    for (j, cap) in p.security.capabilities.iter().enumerate() {
        if !CAPABILITIES.contains(&cap.as_str()) {
            out.push(FieldProblem::new(
                format!("{f}.security.capabilities[{j}]"),
                format!("{cap:?} is not a Linux capability (written like NET_BIND_SERVICE, without CAP_; ALL is not accepted)"),
            ));
        }
    }
    for (what, probe) in [("readinessProbe", &p.readiness_probe), ("livenessProbe", &p.liveness_probe)] {
        let Some(probe) = probe else { continue };
        let hosts = [
            ("httpGet.host", probe.http_get.as_ref().and_then(|h| h.host.as_ref())),
            ("tcpSocket.host", probe.tcp_socket.as_ref().and_then(|t| t.host.as_ref())),
        ];
        for (field, host) in hosts {
            if host.is_some() {
                out.push(FieldProblem::new(
                    format!("{f}.{what}.{field}"),
                    "probes go to the pod itself: the kubelet would send this one to another address; remove host",
                ));
            }
        }
    }
    let mut paths: Vec<(String, &str)> = Vec::new();
    if let Some(path) = &p.mounts.tenant_storage {
        paths.push((format!("{f}.mounts.tenantStorage"), path));
    }
    if let Some(path) = &p.mounts.group_storage {
        paths.push((format!("{f}.mounts.groupStorage"), path));
    }
    if let Some(c) = &p.mounts.config {
        paths.push((format!("{f}.mounts.config.path"), &c.path));
    }
    if p.scratch_size.is_some() {
        paths.push((format!("{f}.scratchSize"), "/tmp"));
    }
    for (i, (field, path)) in paths.iter().enumerate() {
        if let Some(why) = mount_path_problem(path) {
            out.push(FieldProblem::new(field.clone(), why));
        } else if let Some((other, _)) =
            paths[..i].iter().find(|(_, o)| o.trim_end_matches('/') == path.trim_end_matches('/'))
        {
            out.push(FieldProblem::new(field.clone(), format!("{path:?} is already mounted by {other}")));
        }
    }
    for (j, e) in p.env.iter().enumerate() {
        if let Some(s) = &e.secret {
            if !dns_subdomain(&s.name) {
                out.push(FieldProblem::new(
                    format!("{f}.env[{j}].secret.name"),
                    format!("{:?} is not a Secret name in the tenant's namespace (a DNS subdomain, no '/')", s.name),
                ));
            }
            if !config_key(&s.key) {
                out.push(FieldProblem::new(
                    format!("{f}.env[{j}].secret.key"),
                    format!("{:?} is not a Secret key", s.key),
                ));
            }
        }
    }
    out
}

fn env_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Longest template name: generated instance names start with it, and with
/// pod and Service names made from those they must stay DNS labels.
pub const MAX_NAME: usize = 40;

/// What is wrong with a template's name, if anything. It must start with a
/// letter: instances and warm pool sets are named after it, and their
/// Services after them (Service names are DNS-1035 labels).
pub fn validate_name(name: &str) -> Option<FieldProblem> {
    if !crate::is_dns_label(name) || name.len() > MAX_NAME {
        return Some(FieldProblem::new(
            "name",
            format!("{name:?} must be a DNS label (lowercase letters, digits, '-') of at most {MAX_NAME} characters"),
        ));
    }
    (!starts_with_letter(name)).then(|| {
        FieldProblem::new(
            "name",
            format!(
                "{name:?} must start with a letter: its instances are named after it, and their Services after them"
            ),
        )
    })
}

/// Whether `name` starts with a lowercase letter, as a Service's name (a
/// DNS-1035 label) must.
pub fn starts_with_letter(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

impl TemplateSpec {
    /// Whether instances of this template get Services (some pod has a port),
    /// which are named after the instance.
    pub fn makes_services(&self) -> bool {
        self.pods.iter().any(|p| !p.ports.is_empty())
    }
}

impl TemplateSpec {
    /// Every problem with the spec, each naming its field.
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if self.pods.is_empty() {
            out.push(FieldProblem::new("spec.pods", "a template needs at least one pod"));
        }
        let mut nets = BTreeSet::new();
        for (i, n) in self.networks.iter().enumerate() {
            if !crate::is_dns_label(n) || n.len() > 40 {
                out.push(FieldProblem::new(
                    format!("spec.networks[{i}]"),
                    format!("{n:?} must be a DNS label of at most 40 characters"),
                ));
            }
            if !nets.insert(n.as_str()) {
                out.push(FieldProblem::new(format!("spec.networks[{i}]"), format!("duplicate network {n:?}")));
            }
        }
        let mut pod_names = BTreeSet::new();
        for (i, p) in self.pods.iter().enumerate() {
            let f = format!("spec.pods[{i}]");
            if !crate::is_dns_label(&p.name) || p.name.len() > 30 {
                out.push(FieldProblem::new(
                    format!("{f}.name"),
                    format!("{:?} must be a DNS label of at most 30 characters", p.name),
                ));
            }
            if !pod_names.insert(p.name.as_str()) {
                out.push(FieldProblem::new(format!("{f}.name"), format!("duplicate pod name {:?}", p.name)));
            }
            out.extend(hardening_problems(&f, p));
            for (j, n) in p.networks.iter().enumerate() {
                if !nets.contains(n.as_str()) {
                    out.push(FieldProblem::new(
                        format!("{f}.networks[{j}]"),
                        format!("network {n:?} is not declared in spec.networks"),
                    ));
                }
            }
            let mut port_names = BTreeSet::new();
            for (j, port) in p.ports.iter().enumerate() {
                let pf = format!("{f}.ports[{j}]");
                if !port_name(&port.name) {
                    out.push(FieldProblem::new(
                        format!("{pf}.name"),
                        format!("{:?} must be a lowercase name of at most 15 characters", port.name),
                    ));
                }
                if !port_names.insert(port.name.as_str()) {
                    out.push(FieldProblem::new(format!("{pf}.name"), format!("duplicate port name {:?}", port.name)));
                }
                if port.port == 0 {
                    out.push(FieldProblem::new(format!("{pf}.port"), "0 is not a port"));
                }
                if !matches!(port.protocol.as_str(), "TCP" | "UDP" | "SCTP") {
                    out.push(FieldProblem::new(
                        format!("{pf}.protocol"),
                        format!("{:?} is not TCP, UDP or SCTP", port.protocol),
                    ));
                }
            }
            let mut env_names = BTreeSet::new();
            for (j, e) in p.env.iter().enumerate() {
                let ef = format!("{f}.env[{j}]");
                if !env_name(&e.name) {
                    out.push(FieldProblem::new(
                        format!("{ef}.name"),
                        format!("{:?} is not a valid environment variable name", e.name),
                    ));
                }
                if !env_names.insert(e.name.as_str()) {
                    out.push(FieldProblem::new(format!("{ef}.name"), format!("duplicate variable {:?}", e.name)));
                }
                let sources =
                    [e.value.is_some(), e.secret.is_some(), e.generate.is_some()].iter().filter(|x| **x).count();
                if sources != 1 {
                    out.push(FieldProblem::new(ef.clone(), "set exactly one of value, secret and generate"));
                }
                match &e.generate {
                    Some(Generate::Random { length, charset }) => {
                        if *length == 0 || *length > 4096 {
                            out.push(FieldProblem::new(
                                format!("{ef}.generate.random.length"),
                                "must be between 1 and 4096",
                            ));
                        }
                        if charset.as_deref().is_some_and(str::is_empty) {
                            out.push(FieldProblem::new(format!("{ef}.generate.random.charset"), "may not be empty"));
                        }
                    }
                    Some(Generate::Flag { format }) if format.matches("%s").count() != 1 => {
                        out.push(FieldProblem::new(
                            format!("{ef}.generate.flag.format"),
                            format!("{format:?} must contain %s exactly once"),
                        ));
                    }
                    _ => {}
                }
                if e.overridable && e.generate.is_some() {
                    out.push(FieldProblem::new(format!("{ef}.overridable"), "generated values cannot be overridden"));
                }
            }
            if let Some(r) = &p.resources {
                for (kind, list) in [("requests", &r.requests), ("limits", &r.limits)] {
                    for (k, q) in list.iter().flatten() {
                        if quantity::Quantity::parse(&q.0).is_none_or(|x| x.0 < 0) {
                            out.push(FieldProblem::new(
                                format!("{f}.resources.{kind}.{k}"),
                                format!("{:?} is not a quantity", q.0),
                            ));
                        }
                    }
                }
            }
            if let Some(s) = &p.scratch_size
                && quantity::Quantity::parse(s).is_none_or(|x| x.0 <= 0)
            {
                out.push(FieldProblem::new(format!("{f}.scratchSize"), format!("{s:?} is not a positive quantity")));
            }
            if let Some(c) = &p.mounts.config {
                // The files become one ConfigMap: its keys and its 1 MiB.
                for name in c.files.keys() {
                    if !config_key(name) {
                        out.push(FieldProblem::new(
                            format!("{f}.mounts.config.files"),
                            format!(
                                "{name:?} is not a plain file name (letters, digits, '-', '_' and '.', not starting \
                                 with '..', at most 253 characters)"
                            ),
                        ));
                    }
                }
                let size: usize = c.files.values().map(String::len).sum();
                if size > CONFIG_MAX_BYTES {
                    out.push(FieldProblem::new(
                        format!("{f}.mounts.config.files"),
                        format!("the files add up to {size} bytes; a pod's config files may add up to at most 1 MiB (one ConfigMap)"),
                    ));
                }
            }
        }
        let longest = crate::duration::longest_bound();
        let mut checked = |field: &str, raw: Option<&str>| {
            let d = raw.map(|r| crate::duration::within(field, r, crate::duration::LONGEST, &longest));
            d.map(|d| d.map_err(|p| out.push(p)).ok())
        };
        let ttl = self.ttl.as_deref().zip(checked("spec.ttl", self.ttl.as_deref()));
        let max = self.max_ttl.as_deref().zip(checked("spec.maxTtl", self.max_ttl.as_deref()));
        if let (Some((t, Some(td))), Some((m, Some(md)))) = (ttl, max)
            && td > md
        {
            out.push(FieldProblem::new("spec.ttl", format!("{t} is longer than spec.maxTtl {m}")));
        }
        if self.max_per_tenant == 0 {
            out.push(FieldProblem::new("spec.maxPerTenant", "must be at least 1"));
        }
        if let Some(pool) = &self.warm_pool {
            out.extend(self.pool_problems(pool));
        }
        if let Some(idle) = &self.idle {
            out.extend(idle.problems());
            let fixed_only = self.warm_pool.as_ref().is_some_and(|p| p.personalize != Personalize::Api);
            out.extend(idle.http_problems(&self.pods, fixed_only));
        }
        for (i, e) in self.exposure.iter().enumerate() {
            let f = format!("spec.exposure[{i}]");
            match self.pods.iter().find(|p| p.name == e.pod) {
                None => out.push(FieldProblem::new(format!("{f}.pod"), format!("no pod named {:?}", e.pod))),
                Some(p) => match p.ports.iter().find(|x| x.name == e.port) {
                    None => out.push(FieldProblem::new(
                        format!("{f}.port"),
                        format!("pod {:?} has no port named {:?}", e.pod, e.port),
                    )),
                    Some(port) if !port.expose => out.push(FieldProblem::new(
                        format!("{f}.port"),
                        format!("port {:?} of pod {:?} is not exposed (set expose: true on it)", e.port, e.pod),
                    )),
                    Some(_) => {}
                },
            }
        }
        out
    }

    /// The exposure type of a pod's port (ClusterIP unless listed).
    /// Why the template cannot keep a warm pool as asked, if it cannot.
    fn pool_problems(&self, pool: &WarmPool) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if pool.size > MAX_POOL_SIZE {
            out.push(FieldProblem::new("spec.warmPool.size", format!("must be at most {MAX_POOL_SIZE}")));
        }
        if pool.max_unready == 0 {
            out.push(FieldProblem::new("spec.warmPool.maxUnready", "must be at least 1"));
        }
        if pool.refill_per_second == 0 {
            out.push(FieldProblem::new("spec.warmPool.refillPerSecond", "must be at least 1"));
        }
        for (i, p) in self.pods.iter().enumerate() {
            for (what, set) in [
                ("tenantStorage", p.mounts.tenant_storage.is_some()),
                ("groupStorage", p.mounts.group_storage.is_some()),
            ] {
                if set {
                    out.push(FieldProblem::new(
                        format!("spec.pods[{i}].mounts.{what}"),
                        "a pooled pod starts before it belongs to a tenant, so it cannot mount tenant storage; remove the mount or the warm pool",
                    ));
                }
            }
            if pool.personalize == Personalize::Api {
                continue;
            }
            for (j, e) in p.env.iter().enumerate() {
                let why = if e.generate.is_some() {
                    "is generated per instance"
                } else if e.secret.is_some() {
                    "comes from a Secret in the tenant's namespace"
                } else if e.overridable {
                    "can be overridden per instance"
                } else {
                    continue;
                };
                out.push(FieldProblem::new(
                    format!("spec.pods[{i}].env[{j}]"),
                    format!(
                        "{} {why}, which a pod started before its claim cannot have; set spec.warmPool.personalize: api so the pod fetches it from GET /v1/claim",
                        e.name
                    ),
                ));
            }
        }
        out
    }

    pub fn exposure_of(&self, pod: &str, port: &str) -> ExposureType {
        self.exposure
            .iter()
            .find(|e| e.pod == pod && e.port == port)
            .map(|e| e.type_)
            .unwrap_or(ExposureType::ClusterIP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86400);
        for bad in ["", "10", "h", "1x", "0s"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn config_files_must_fit_one_config_map() {
        let with = |files: serde_json::Value| {
            spec(json!({"pods": [{"name": "web", "image": "x", "mounts": {"config": {"files": files}}}]})).validate()
        };
        assert_eq!(with(json!({"app.conf": "a", "KEY_1-x": "b"})), vec![]);
        for bad in ["my file", "../etc", "a/b", ".", ""] {
            let p = with(json!({bad: "a"}));
            assert!(p.len() == 1 && p[0].reason.contains("is not a plain file name"), "{bad}: {p:?}");
        }
        let half = "x".repeat(512 * 1024);
        assert_eq!(with(json!({"a": half, "b": half})), vec![]);
        let p = with(json!({"a": half, "b": half, "c": "y"}));
        assert!(p.len() == 1 && p[0].reason.contains("at most 1 MiB"), "{p:?}");
    }

    #[test]
    fn template_names_are_labels_that_start_with_a_letter() {
        assert!(validate_name("ctf-web").is_none());
        assert!(validate_name("Web").unwrap().reason.contains("must be a DNS label"));
        assert!(validate_name("1web").unwrap().reason.contains("must start with a letter"));
    }

    #[test]
    fn a_good_template_has_no_problems() {
        let s = spec(json!({"networks": ["teamnet", "backend"], "ttl": "2h", "maxTtl": "6h",
            "pods": [
                {"name": "web", "image": "ghcr.io/ctf/web:1", "networks": ["teamnet", "backend"],
                 "ports": [{"name": "http", "port": 8080, "expose": true}],
                 "env": [{"name": "FLAG", "generate": {"flag": {"format": "FLAG{%s}"}}}, {"name": "MODE", "value": "ctf", "overridable": true}]},
                {"name": "db", "image": "postgres:16", "networks": ["backend"], "ports": [{"name": "sql", "port": 5432}]}
            ],
            "exposure": [{"pod": "web", "port": "http", "type": "NodePort"}]}));
        assert_eq!(s.validate(), vec![]);
        assert_eq!(s.max_per_tenant, 1);
        assert_eq!(s.exposure_of("web", "http"), ExposureType::NodePort);
        assert_eq!(s.exposure_of("db", "sql"), ExposureType::ClusterIP);
    }

    #[test]
    fn pools_refuse_per_instance_values_unless_personalised() {
        let mut s = spec(json!({"pods": [{"name": "web", "image": "x",
            "env": [{"name": "FLAG", "generate": {"flag": {"format": "F{%s}"}}}, {"name": "KEY", "secret": {"name": "s", "key": "k"}},
                    {"name": "MODE", "value": "a", "overridable": true}, {"name": "PLAIN", "value": "b"}],
            "mounts": {"tenantStorage": "/data"}}],
            "warmPool": {"size": 2000, "maxUnready": 0, "refillPerSecond": 0}}));
        let p: Vec<String> = s.validate().iter().map(|p| p.to_string()).collect();
        for want in [
            "spec.warmPool.size: must be at most 1000",
            "spec.warmPool.maxUnready: must be at least 1",
            "spec.warmPool.refillPerSecond: must be at least 1",
            "spec.pods[0].mounts.tenantStorage: a pooled pod starts before it belongs to a tenant",
            "spec.pods[0].env[0]: FLAG is generated per instance",
            "spec.pods[0].env[1]: KEY comes from a Secret in the tenant's namespace",
            "spec.pods[0].env[2]: MODE can be overridden per instance",
        ] {
            assert!(p.iter().any(|x| x.starts_with(want)), "missing {want:?} in {p:#?}");
        }
        assert_eq!(p.len(), 7, "{p:#?}");
        s.pods[0].mounts.tenant_storage = None;
        s.warm_pool = Some(WarmPool {
            size: 5,
            max_unready: 2,
            refill_per_second: 10,
            personalize: Personalize::Api,
            prepull: true,
        });
        assert_eq!(s.validate(), vec![]);
        let d: WarmPool = serde_json::from_value(json!({"size": 3})).unwrap();
        assert_eq!((d.max_unready, d.refill_per_second, d.personalize, d.prepull), (5, 100, Personalize::None, false));
    }

    #[test]
    fn idle_settings_are_bounded_and_say_what_is_not_available() {
        let problems = |idle: serde_json::Value| -> Vec<String> {
            let s = spec(json!({"idle": idle, "pods": [{"name": "web", "image": "x"}]}));
            s.validate().iter().map(|p| p.to_string()).collect()
        };
        assert!(problems(json!({"after": "30m"})).is_empty());
        assert!(problems(json!({"after": "1s", "action": "Stop", "resumeOnUse": true})).is_empty());
        for (after, why) in [
            ("0s", "spec.idle.after: 0s is zero"),
            ("soon", "spec.idle.after: \"soon\" is not a duration"),
            ("99999999999999999999999d", "spec.idle.after: 99999999999999999999999d is longer than"),
            ("3651d", "spec.idle.after: 3651d is longer than"),
        ] {
            let p = problems(json!({"after": after}));
            assert!(p.len() == 1 && p[0].starts_with(why), "{after}: {p:?}");
        }
        let p = problems(json!({"after": "1h", "signal": "Connections"}));
        assert!(p.len() == 1 && p[0].starts_with("spec.idle.signal: Connections is not available"), "{p:?}");
        // Http: an endpoint of one of the template's pods.
        let p = problems(json!({"after": "1h", "signal": "Http"}));
        assert!(p.len() == 1 && p[0].starts_with("spec.idle.http: needed with signal Http"), "{p:?}");
        let p = problems(json!({"after": "1h", "http": {"port": 8888}}));
        assert!(p.len() == 1 && p[0].starts_with("spec.idle.http: only read with signal Http"), "{p:?}");
        let http = |h: serde_json::Value| problems(json!({"after": "1h", "signal": "Http", "http": h}));
        assert!(http(json!({"port": 8888})).is_empty());
        assert!(http(json!({"port": 8888, "pod": "web", "path": "/status", "field": "a.b_c"})).is_empty());
        for (h, field) in [
            (json!({"port": 0}), "spec.idle.http.port"),
            (json!({"port": 70000}), "spec.idle.http.port"),
            (json!({"port": "http"}), "spec.idle.http.port"),
            (json!({"port": 80, "pod": "db"}), "spec.idle.http.pod"),
            (json!({"port": 80, "path": "api/status"}), "spec.idle.http.path"),
            (json!({"port": 80, "path": "/a b"}), "spec.idle.http.path"),
            (json!({"port": 80, "path": format!("/{}", "a".repeat(1100))}), "spec.idle.http.path"),
            (json!({"port": 80, "field": "a..b"}), "spec.idle.http.field"),
            (json!({"port": 80, "field": "$.x"}), "spec.idle.http.field"),
            (json!({"port": 80, "tokenFrom": "NOPE"}), "spec.idle.http.tokenFrom"),
        ] {
            let p = http(h.clone());
            assert!(p.len() == 1 && p[0].starts_with(&format!("{field}:")), "{h}: {p:?}");
        }
        // With a warm pool, the token must be a fixed value (a warm pod starts before its claim).
        let pooled = |env: serde_json::Value, personalize: &str| -> Vec<String> {
            let s = spec(json!({"idle": {"after": "1h", "signal": "Http", "http": {"port": 80, "tokenFrom": "T"}},
                "warmPool": {"size": 1, "personalize": personalize}, "pods": [{"name": "web", "image": "x", "env": [env]}]}));
            s.validate().iter().map(|p| p.to_string()).collect()
        };
        assert!(pooled(json!({"name": "T", "value": "fixed"}), "none").is_empty());
        let p = pooled(json!({"name": "T", "generate": {"random": {"length": 8}}}), "none");
        assert!(p.iter().any(|p| p.starts_with("spec.idle.http.tokenFrom:") && p.contains("warm pool")), "{p:?}");
        // Fetched from the claim, a generated value is the instance's: the one Paddock sends.
        assert!(pooled(json!({"name": "T", "generate": {"random": {"length": 8}}}), "api").is_empty());
        // An unknown action or signal does not parse at all (the CRD's enum refuses it).
        let bad: Result<TemplateSpec, _> =
            serde_json::from_value(json!({"idle": {"after": "1h", "action": "Hibernate"}, "pods": []}));
        assert!(bad.is_err());
        let idle: Idle = serde_json::from_value(json!({"after": "90s"})).unwrap();
        assert_eq!(
            (idle.period(), idle.action, idle.signal, idle.resume_on_use),
            (Some(std::time::Duration::from_secs(90)), IdleAction::Suspend, IdleSignal::Heartbeat, false)
        );
    }

    #[test]
    fn every_problem_names_its_field() {
        let s = spec(json!({"networks": ["a"], "ttl": "7h", "maxTtl": "6h", "maxPerTenant": 0,
            "pods": [
                {"name": "web", "image": "x", "networks": ["b"], "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81, "protocol": "ICMP"}],
                 "env": [{"name": "A", "value": "1", "generate": {"random": {"length": 0}}}, {"name": "F", "generate": {"flag": {"format": "FLAG"}}}],
                 "resources": {"requests": {"cpu": "lots"}}, "mounts": {"tenantStorage": "data"}},
                {"name": "web", "image": "has space"}
            ],
            "exposure": [{"pod": "web", "port": "http", "type": "NodePort"}, {"pod": "nope", "port": "x", "type": "ClusterIP"}]}));
        let p: Vec<String> = s.validate().iter().map(|p| p.to_string()).collect();
        for want in [
            "spec.pods[0].networks[0]: network \"b\" is not declared in spec.networks",
            "spec.pods[0].ports[1].name: duplicate port name \"http\"",
            "spec.pods[0].ports[1].protocol: \"ICMP\" is not TCP, UDP or SCTP",
            "spec.pods[0].env[0]: set exactly one of value, secret and generate",
            "spec.pods[0].env[0].generate.random.length: must be between 1 and 4096",
            "spec.pods[0].env[1].generate.flag.format: \"FLAG\" must contain %s exactly once",
            "spec.pods[0].resources.requests.cpu: \"lots\" is not a quantity",
            "spec.pods[0].mounts.tenantStorage: \"data\" must be an absolute path",
            "spec.pods[1].name: duplicate pod name \"web\"",
            "spec.pods[1].image: \"has space\" is not an image reference (letters, digits and ._-/:@ only)",
            "spec.ttl: 7h is longer than spec.maxTtl 6h",
            "spec.maxPerTenant: must be at least 1",
            "spec.exposure[0].port: port \"http\" of pod \"web\" is not exposed (set expose: true on it)",
            "spec.exposure[1].pod: no pod named \"nope\"",
        ] {
            assert!(p.contains(&want.to_string()), "missing {want:?} in {p:#?}");
        }
    }
}
