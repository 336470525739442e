//! The resource types the server knows: the built-in kinds and the custom
//! resources registered through CustomResourceDefinitions at run time.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Index of a resource type in the registry (stable for the server's lifetime).
pub type ResId = usize;

/// A printer column of a CRD (`additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub json_path: String,
    pub priority: i64,
}

#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served versions; the first is the storage version.
    pub versions: Vec<String>,
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub generation: bool,
    /// Field selectors supported beyond metadata.name / metadata.namespace.
    pub field_selectors: Vec<String>,
    /// Set for custom resources: the CRD's name and its schema per version.
    pub crd: Option<CrdInfo>,
    /// Whether DELETE answers with the object (true) or a Status (false).
    pub return_deleted_object: bool,
}

#[derive(Debug, Clone)]
pub struct CrdInfo {
    pub crd_name: String,
    pub schemas: HashMap<String, Arc<Value>>,
    pub printer_columns: HashMap<String, Vec<PrinterColumn>>,
}

impl ResourceDef {
    pub fn storage_version(&self) -> &str {
        &self.versions[0]
    }
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{version}", self.group) }
    }
    pub fn storage_api_version(&self) -> String {
        self.api_version(self.storage_version())
    }
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
    /// The schema of a custom resource version, if declared.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.crd.as_ref()?.schemas.get(version).map(|v| v.as_ref())
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
    fields: &'static [&'static str],
    return_deleted: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status,
        generation: false,
        fields: &[],
        return_deleted: false,
    }
}

const fn with_generation(mut x: Builtin) -> Builtin {
    x.generation = true;
    x
}

const fn returning_object(mut x: Builtin) -> Builtin {
    x.return_deleted = true;
    x
}

const fn with_fields(mut x: Builtin, fields: &'static [&'static str]) -> Builtin {
    x.fields = fields;
    x
}

const BUILTINS: &[Builtin] = &[
    with_fields(b("", "v1", "Namespace", "namespaces", false, &["ns"], true), &["status.phase"]),
    returning_object(with_fields(
        b("", "v1", "Pod", "pods", true, &["po"], true),
        &[
            "spec.nodeName",
            "status.phase",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.podIP",
        ],
    )),
    returning_object(b("", "v1", "Service", "services", true, &["svc"], true)),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"], false),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
    with_fields(b("", "v1", "Secret", "secrets", true, &[], false), &["type"]),
    b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true),
    b("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], true),
    b("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], true),
    b("", "v1", "LimitRange", "limitranges", true, &["limits"], false),
    with_fields(
        b("", "v1", "Event", "events", true, &["ev"], false),
        &[
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ],
    ),
    with_fields(b("", "v1", "Node", "nodes", false, &["no"], true), &["spec.unschedulable"]),
    b("events.k8s.io", "v1", "Event", "events", true, &["ev"], false),
    with_generation(b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false)),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false),
    b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false),
    b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false),
    b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false),
    b("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false),
    with_generation(b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], true)),
    b("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false, &[], false),
    b("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false),
    b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false),
    with_generation(b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true)),
    with_generation(b("apps", "v1", "Deployment", "deployments", true, &["deploy"], true)),
    with_generation(b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true)),
    with_generation(b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
    )),
];

/// The set of resource types. Built-ins are fixed; custom resources are added and
/// removed as CRDs come and go (a removed type keeps its slot, marked gone).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: Vec<Option<Arc<ResourceDef>>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for x in BUILTINS {
            let categories = match x.plural {
                "pods" | "services" | "daemonsets" | "deployments" | "replicasets" => {
                    vec!["all".to_string()]
                }
                _ => vec![],
            };
            r.defs.push(Some(Arc::new(ResourceDef {
                group: x.group.to_string(),
                kind: x.kind.to_string(),
                list_kind: format!("{}List", x.kind),
                plural: x.plural.to_string(),
                singular: x.kind.to_lowercase(),
                namespaced: x.namespaced,
                short_names: x.short.iter().map(|s| s.to_string()).collect(),
                categories,
                versions: vec![x.version.to_string()],
                status_subresource: x.status,
                generation: x.generation,
                field_selectors: x.fields.iter().map(|s| s.to_string()).collect(),
                crd: None,
                return_deleted_object: x.return_deleted,
            })));
        }
        r
    }

    pub fn get(&self, id: ResId) -> Option<&Arc<ResourceDef>> {
        self.defs.get(id).and_then(|d| d.as_ref())
    }

    /// Finds a type by group and plural (any version).
    pub fn find(&self, group: &str, plural: &str) -> Option<(ResId, &Arc<ResourceDef>)> {
        self.iter().find(|(_, d)| d.is(group, plural))
    }

    /// Finds a type served at group/version under plural.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<(ResId, &Arc<ResourceDef>)> {
        self.find(group, plural).filter(|(_, d)| d.serves(version))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ResId, &Arc<ResourceDef>)> {
        self.defs.iter().enumerate().filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
    }

    /// Adds or replaces the type of a CRD; returns its id.
    pub fn upsert_custom(&mut self, def: ResourceDef) -> ResId {
        if let Some(id) = self
            .defs
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.crd.is_some() && d.group == def.group && d.plural == def.plural))
        {
            self.defs[id] = Some(Arc::new(def));
            id
        } else {
            self.defs.push(Some(Arc::new(def)));
            self.defs.len() - 1
        }
    }

    pub fn remove(&mut self, id: ResId) {
        if let Some(slot) = self.defs.get_mut(id) {
            *slot = None;
        }
    }

    /// The ids that may hold objects (for slot-indexed tables).
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

/// Builds a [`ResourceDef`] from a CRD object, or explains why it can't be served.
pub fn def_from_crd(crd: &Value) -> Result<ResourceDef, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let group = s(spec.get("group")).ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = s(names.get("plural")).ok_or("spec.names.plural is required")?;
    let kind = s(names.get("kind")).ok_or("spec.names.kind is required")?;
    let singular = s(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    let list_kind = s(names.get("listKind")).unwrap_or_else(|| format!("{kind}List"));
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let short_names = strs(names.get("shortNames"));
    let categories = strs(names.get("categories"));
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope must be Namespaced or Cluster".into()),
    };
    let mut versions = Vec::new();
    let mut storage = None;
    let mut status = false;
    let mut schemas = HashMap::new();
    let mut printer_columns = HashMap::new();
    for v in spec.get("versions").and_then(Value::as_array).ok_or("spec.versions is required")? {
        let name = s(v.get("name")).ok_or("spec.versions[].name is required")?;
        if v.get("served").and_then(Value::as_bool) == Some(true) {
            versions.push(name.clone());
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage = Some(name.clone());
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(name.clone(), Arc::new(schema.clone()));
        }
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: s(c.get("name"))?,
                            type_: s(c.get("type")).unwrap_or_else(|| "string".into()),
                            format: s(c.get("format")).unwrap_or_default(),
                            description: s(c.get("description")).unwrap_or_default(),
                            json_path: s(c.get("jsonPath"))?,
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        printer_columns.insert(name, cols);
    }
    let storage = storage.ok_or("exactly one version must be the storage version")?;
    // Storage version first.
    versions.retain(|v| v != &storage);
    versions.insert(0, storage);
    Ok(ResourceDef {
        group,
        kind,
        list_kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        versions,
        status_subresource: status,
        generation: true,
        field_selectors: vec![],
        crd: Some(CrdInfo { crd_name: s(crd.pointer("/metadata/name")).unwrap_or_default(), schemas, printer_columns }),
        return_deleted_object: true,
    })
}
