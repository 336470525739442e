//! Paddock's names on Kubernetes objects, in one place: the labels it
//! selects on, the annotations it reads back, its finalizers, and how a
//! tenant's namespace is named. Every crate takes them from here, so a name
//! cannot differ between the writer and a reader (and users' own labels are
//! refused under these prefixes, `crate::labels`).

// Labels.
/// Who manages an object (`app.kubernetes.io/managed-by`), and Paddock's value.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "paddock";
/// The tenant, template and instance an object belongs to.
pub const TENANT: &str = "paddock.dev/tenant";
pub const TEMPLATE: &str = "paddock.dev/template";
pub const INSTANCE: &str = "paddock.dev/instance";
/// A pod's role (a VPN server) and a node's role (vpn, task, shared, unmanaged).
pub const ROLE: &str = "paddock.dev/role";
pub const NODE_ROLE: &str = "paddock.dev/node-role";
/// A template pod's name, on its pods and Services.
pub const POD: &str = "paddock.dev/pod";
/// Which part of a tenant an object is (`tenant`, `vpn`).
pub const COMPONENT: &str = "paddock.dev/component";
/// On a tenant namespace: the tenant's kind.
pub const TENANT_KIND: &str = "paddock.dev/tenant-kind";
/// On a group's shared volume claim: the group.
pub const GROUP: &str = "paddock.dev/group";
/// On a tenant's volume: whether it is kept when the tenant goes, and that it was.
pub const RETAIN: &str = "paddock.dev/retain";
pub const RETAINED: &str = "paddock.dev/retained";
/// On the image prepull DaemonSet: the template whose images it pulls.
pub const PREPULL: &str = "paddock.dev/prepull";
/// On Secrets of the system namespace holding admin tokens (`admin`).
pub const CREDENTIALS: &str = "paddock.dev/credentials";
/// On what a benchmark run creates: the run.
pub const BENCH: &str = "paddock.dev/bench";
/// Warm pools: the template a pool object belongs to, the pod set, the
/// template generation it was built from, the claiming Instance's uid and
/// namespace, and pods that fetch their per-instance values when claimed.
pub const POOL: &str = "paddock.dev/pool";
pub const POOL_SET: &str = "paddock.dev/pool-set";
pub const TEMPLATE_GENERATION: &str = "paddock.dev/template-generation";
pub const CLAIM: &str = "paddock.dev/claim";
pub const INSTANCE_NAMESPACE: &str = "paddock.dev/instance-namespace";
pub const PERSONALIZE: &str = "paddock.dev/personalize";

// Annotations.
/// When the client asked for an instance (RFC 3339, microseconds).
pub const REQUESTED_AT: &str = "paddock.dev/requested-at";
/// The Idempotency-Key an instance was started with.
pub const IDEMPOTENCY_KEY: &str = "paddock.dev/idempotency-key";
/// Annotation: why an Instance's `spec.suspend` was set (`Idle` by the idle
/// reaper; anything else reads as a request).
pub const SUSPEND_REASON: &str = "paddock.dev/suspend-reason";
/// Key of an instance's Secret holding its heartbeat token.
pub const HEARTBEAT_TOKEN_KEY: &str = "heartbeat-token";
/// Prefix of an instance's heartbeat token.
pub const HEARTBEAT_TOKEN_PREFIX: &str = "pdi.";
/// The hash of the configuration a VPN server pod was made from.
pub const CONFIG_HASH: &str = "paddock.dev/config-hash";
/// On a Tenant: when its storage was last browsed (RFC 3339), written by the
/// API; the controller keeps the tenant's file server up for the idle period
/// after it.
pub const FILES_ACTIVE: &str = "paddock.dev/files-active";
/// The tenant's file server: its pod, token Secret and NetworkPolicy.
pub const FILES_SERVER: &str = "paddock-files";
/// The key of the file-server token in the [`FILES_SERVER`] Secret.
pub const FILES_TOKEN_KEY: &str = "token";

// Finalizers.
pub const TENANT_FINALIZER: &str = "paddock.dev/tenant-cleanup";
pub const INSTANCE_FINALIZER: &str = "paddock.dev/instance-cleanup";
pub const TEMPLATE_FINALIZER: &str = "paddock.dev/template-in-use";

/// The namespace of `tenant`: `<prefix><tenant>`.
pub fn tenant_namespace(prefix: &str, tenant: &str) -> String {
    format!("{prefix}{tenant}")
}

/// The tenant whose namespace `ns` is, by name (`None` when `ns` cannot be
/// a tenant's).
pub fn tenant_of_namespace(prefix: &str, ns: &str) -> Option<String> {
    ns.strip_prefix(prefix).filter(|t| crate::is_dns_label(t)).map(str::to_string)
}

// Object names.
/// The tenant namespace's ServiceAccount: what its Role `tenant-reader` is
/// bound to, and what tenant kubeconfigs act as.
pub const TENANT_SERVICE_ACCOUNT: &str = "tenant";
/// The tenant namespace's ResourceQuota.
pub const TENANT_QUOTA: &str = "quota";

/// The PersistentVolumeClaim of a tenant's own storage: `shared` for a group
/// (its members mount it), `storage` for everyone else.
pub fn storage_claim(kind: crate::tenant::TenantKind) -> &'static str {
    if kind == crate::tenant::TenantKind::Group { "shared" } else { "storage" }
}

/// The claim in a member's namespace bound to group `group`'s shared volume.
pub fn group_claim(group: &str) -> String {
    format!("group-{group}")
}

/// The pod label that lets pods on template network `network` reach each
/// other (`paddock.dev/net-<network>`).
pub fn network_label(network: &str) -> String {
    format!("paddock.dev/net-{network}")
}
