//! Paddock's RBAC, as `paddock manifests` ships it, and the check that a
//! request (as an authorizer sees it) is allowed by it. kubesim checks no
//! permissions, so tests compare what it served (`/sim/v1/access`) with
//! these rules: a missing permission fails a test, not a real cluster.

use serde_json::{Value, json};

/// One RBAC rule: `verbs` on `resources` of the API `groups`.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// Paddock's ClusterRole: exactly what the controller and the API use
/// (checked against every request of an end-to-end run).
pub fn cluster_role_rules() -> Vec<Value> {
    let rw = ["get", "list", "watch", "create", "patch", "update", "delete"];
    vec![
        // Tenants and templates are created and deleted by the API; instances started by it.
        rule(&["paddock.dev"], &["tenants"], &["get", "list", "watch", "create", "patch", "update", "delete"]),
        rule(&["paddock.dev"], &["tenants/status"], &["get", "patch", "update"]),
        rule(&["paddock.dev"], &["tenants/finalizers"], &["update"]),
        rule(&["paddock.dev"], &["instances"], &["get", "list", "watch", "create", "patch", "update", "delete"]),
        rule(&["paddock.dev"], &["instances/status"], &["get", "patch", "update"]),
        rule(&["paddock.dev"], &["instances/finalizers"], &["update"]),
        rule(&["paddock.dev"], &["templates"], &["get", "list", "watch", "create", "patch", "update", "delete"]),
        rule(&["paddock.dev"], &["templates/status"], &["get", "patch", "update"]),
        // Warm pool pods name their template as owner with blockOwnerDeletion,
        // which OwnerReferencesPermissionEnforcement allows only with this.
        rule(&["paddock.dev"], &["templates/finalizers"], &["update"]),
        rule(&[""], &["namespaces", "resourcequotas", "limitranges", "serviceaccounts", "persistentvolumeclaims"], &rw),
        rule(
            &[""],
            &["pods", "services", "configmaps", "secrets"],
            &["get", "list", "watch", "create", "patch", "update", "delete", "deletecollection"],
        ),
        // Group members get their own volume pointing at the group's; it goes when they leave.
        // A server-side apply that creates an object is authorised for `create` too.
        rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "create", "patch", "delete"]),
        // Granted onward to tenants through their Role (RBAC forbids granting what one lacks).
        rule(&[""], &["pods/log"], &["get"]),
        rule(&["", "events.k8s.io"], &["events"], &["get", "list", "watch"]),
        // Tenant kubeconfigs: tokens of the tenants' ServiceAccount `tenant`.
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&[""], &["nodes"], &["get", "list", "watch"]),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies"],
            &["get", "list", "watch", "create", "patch", "update", "delete", "deletecollection"],
        ),
        rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], &rw),
        // Warm pools' image prepull.
        rule(&["apps"], &["daemonsets"], &rw),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        // Tenant clusters: Paddock's own resources, the profiles (read), and
        // the Cluster API objects it renders (any infrastructure provider's).
        rule(&["paddock.dev"], &["clusters"], &["get", "list", "watch", "create", "patch", "update", "delete"]),
        rule(&["paddock.dev"], &["clusters/status"], &["get", "patch", "update"]),
        rule(&["paddock.dev"], &["clusters/finalizers"], &["update"]),
        // Profiles are an admin's; `paddock dev` applies its own.
        rule(&["paddock.dev"], &["clusterprofiles"], &["get", "list", "watch", "create", "patch"]),
        rule(&["cluster.x-k8s.io"], &["clusters", "machinedeployments", "machinehealthchecks"], &rw),
        rule(&["cluster.x-k8s.io"], &["machines"], &["get", "list", "watch"]),
        rule(&["controlplane.cluster.x-k8s.io"], &["kubeadmcontrolplanes"], &rw),
        rule(&["bootstrap.cluster.x-k8s.io"], &["kubeadmconfigtemplates"], &rw),
        rule(&["addons.cluster.x-k8s.io"], &["clusterresourcesets"], &rw),
        // The infrastructure providers Paddock knows; another needs its two
        // kinds added here (docs/clusters.md).
        rule(&["infrastructure.cluster.x-k8s.io"], INFRASTRUCTURE, &rw),
    ]
}

/// The infrastructure kinds (cluster and machine template) Paddock's
/// ClusterRole covers: kubesim's, Docker's, OpenStack's, vSphere's, AWS's,
/// Azure's, GCP's.
pub const INFRASTRUCTURE: &[&str] = &[
    "kubesimclusters",
    "kubesimmachinetemplates",
    "dockerclusters",
    "dockermachinetemplates",
    "openstackclusters",
    "openstackmachinetemplates",
    "vsphereclusters",
    "vspheremachinetemplates",
    "awsclusters",
    "awsmachinetemplates",
    "azureclusters",
    "azuremachinetemplates",
    "gcpclusters",
    "gcpmachinetemplates",
];

/// The system namespace's Role for leader election.
pub fn leader_election_rules() -> Vec<Value> {
    vec![rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"])]
}

/// Whether `rules` allow `verb` on `resource` (with its subresource, e.g.
/// `pods/log`) of API `group` ("" for core).
pub fn allows(rules: &[Value], verb: &str, group: &str, resource: &str) -> bool {
    let has = |list: &Value, v: &str| list.as_array().is_some_and(|l| l.iter().any(|x| x == v || x == "*"));
    rules.iter().any(|r| has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb))
}

/// Of `requests` (verb, group, resource), those Paddock's ClusterRole and
/// leader-election Role do not allow, as `verb group/resource`. CRDs are left
/// out: the bundle installs them, and only `paddock dev` and tests do so with
/// Paddock's client.
pub fn not_allowed(requests: &[(String, String, String)]) -> Vec<String> {
    let mut rules = cluster_role_rules();
    rules.extend(leader_election_rules());
    requests
        .iter()
        .filter(|(_, g, _)| g != "apiextensions.k8s.io")
        .filter(|(v, g, r)| !allows(&rules, v, g, r))
        .map(|(v, g, r)| format!("{v} {g}/{r}"))
        .collect()
}
