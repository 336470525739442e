//! Writes: create (with generateName and dryRun), patches of every kind and
//! server-side apply — all through defaulting, admission and validation.
//! Updates themselves (PUT, status writes, the patches' commit) are in
//! `update`.

use super::{Cluster, State, now_rfc3339};
use crate::admission;
use crate::config::KubeVersion;
use crate::defaults;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::patch::{self, PatchType, fieldmanager};
use crate::registry::{ResId, ResourceDef};
use crate::store::Obj;
use crate::validation;
use quantity::{Quantity, is_bytes};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// How a patch sees stored objects: through `def` at `version`, converted by
/// `to_view`, and back by `to_stored` (given the stored object too).
pub struct View<'a> {
    pub def: &'a ResourceDef,
    pub version: &'a str,
    pub to_view: &'a dyn Fn(&Value) -> Value,
    pub to_stored: &'a dyn Fn(Value, &Value) -> ApiResult<Value>,
}

#[derive(Debug, Default, Clone)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields of custom resources are an error
    /// instead of being dropped.
    pub strict: bool,
    /// The Kubernetes version the cluster emulates (set by the cluster on every
    /// write): which CEL libraries a CRD's rules may use, whether validation
    /// ratchets.
    pub(crate) kube: KubeVersion,
}

impl WriteOpts {
    pub fn manager(name: &str) -> Self {
        Self { field_manager: Some(name.to_string()), ..Default::default() }
    }
    /// These options on `cluster`, which sets the emulated version.
    pub(super) fn on(&self, cluster: &Cluster) -> std::borrow::Cow<'_, Self> {
        if self.kube == cluster.config.kubernetes_version {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(Self { kube: cluster.config.kubernetes_version, ..self.clone() })
    }
    pub(super) fn manager_name(&self) -> String {
        self.field_manager.clone().unwrap_or_else(|| "unknown".into())
    }
}

pub(super) fn meta_str<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get("metadata").and_then(|m| m.get(k)).and_then(Value::as_str)
}

pub(super) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    crate::jsonobj::child_object(v, "metadata")
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Checks apiVersion/kind of a body against the endpoint and fills them in.
pub(super) fn check_type(def: &ResourceDef, version: &str, obj: &mut Value) -> ApiResult<()> {
    let Some(m) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the object provided is unrecognized (must be a JSON object)"));
    };
    let want_av = def.api_version(version);
    if let Some(av) = m.get("apiVersion").and_then(Value::as_str)
        && av != want_av
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if let Some(k) = m.get("kind").and_then(Value::as_str)
        && k != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "{k} in version {version:?} cannot be handled as a {}: the kind in the body does not match the endpoint",
            def.kind
        )));
    }
    // Stored in the storage version; the CRD "None" conversion only rewrites apiVersion.
    m.insert("apiVersion".into(), json!(def.storage_api_version()));
    m.insert("kind".into(), json!(def.kind));
    Ok(())
}

/// Kind-specific preparation that upstream strategies do on every write.
pub(super) fn prepare(def: &ResourceDef, obj: &mut Value) {
    if def.group.is_empty() && def.plural == "namespaces" {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let meta = meta_mut(obj);
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
}

impl State {
    /// The type and current state of an object, or upstream's NotFound.
    pub(crate) fn existing(&self, res: ResId, ns: &str, name: &str) -> ApiResult<(Arc<ResourceDef>, Arc<Obj>)> {
        let def = self.registry.get(res).cloned().ok_or_else(ApiError::unknown_path)?;
        let key = State::key(&def, ns, name);
        let old = self
            .store
            .get(res, &key.0, &key.1)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        Ok((def, old))
    }

    pub(super) fn charge_quotas(&mut self, ns: &str, charges: admission::QuotaCharges) {
        let Some((qid, qdef)) = self.res("", "resourcequotas") else {
            return;
        };
        for admission::QuotaCharge { quota, delta } in charges {
            let Some(qname) = quota.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let Some(q) = self.store.get(qid, ns, &qname) else {
                continue;
            };
            // The quota as admission read it, unless it changed since (then as stored).
            let admitted_rv = quota.pointer("/metadata/resourceVersion").and_then(Value::as_str);
            let mut v = if admitted_rv.and_then(|r| r.parse().ok()) == Some(q.rv) {
                Arc::unwrap_or_clone(quota)
            } else {
                q.value()
            };
            let used = v.pointer_mut("/status/used").and_then(Value::as_object_mut);
            let Some(used) = used else { continue };
            for (r, d) in delta {
                let cur = used.get(&r).and_then(Quantity::from_value).unwrap_or_default();
                used.insert(r.clone(), json!((cur + d).render(is_bytes(&r))));
            }
            let rv = self.store.next_rv();
            meta_mut(&mut v).insert("resourceVersion".into(), json!(rv.to_string()));
            // Decoded as it is stored: the next create's admission reads it.
            let o = self.encode(&qdef, &v, rv).decoded_as(Arc::new(v));
            self.store.put_status(qid, (ns.into(), qname.as_str().into()), o);
        }
    }

    /// Stores a new object (admission already done). Returns the stored value.
    fn insert_new(&mut self, res: ResId, def: &ResourceDef, ns: &str, mut obj: Value) -> Arc<Obj> {
        let rv = self.store.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let o = self.encode(def, &obj, rv);
        self.store.put(res, State::key(def, ns, &name), o)
    }

    /// Mutating admission on create: LimitRanger, ServiceAccount, DefaultStorageClass.
    fn admit_create_mutating(&self, def: &ResourceDef, ns: &str, name: &str, obj: &mut Value) -> ApiResult<()> {
        if def.namespaced {
            admission::namespace_lifecycle(self, def, ns, name)?;
        }
        if def.group.is_empty() && def.plural == "pods" {
            admission::limit_ranger(self, def, ns, name, obj)?;
            admission::service_account(self, ns, name, obj)?;
        }
        if def.group.is_empty() && def.plural == "persistentvolumeclaims" {
            admission::default_storage_class(self, obj);
            admission::limit_ranger(self, def, ns, name, obj)?;
        }
        Ok(())
    }

    /// A create that storage refuses (`refused`): upstream's quota admission
    /// runs before storage, so a full quota answers instead (403), and
    /// otherwise the quota is charged before the refusal (the quota
    /// controller's next recount gives the charge back).
    fn refused_after_quota(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &Value,
        dry_run: bool,
        refused: ApiError,
    ) -> ApiError {
        match admission::quota(self, def, ns, name, obj, None) {
            Err(full) => full,
            Ok(charges) => {
                if !dry_run {
                    self.charge_quotas(ns, charges);
                }
                refused
            }
        }
    }

    /// The part of a create that must be atomic with the store: lifecycle and
    /// name checks, allocation, quota, and the write itself.
    fn commit_create(
        &mut self,
        res: ResId,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        generated: bool,
        dry_run: bool,
    ) -> ApiResult<Arc<Obj>> {
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if def.namespaced {
            admission::namespace_lifecycle(self, def, ns, &name)?;
        }
        // Upstream's storage refuses a create that carries a resourceVersion
        // (a number other than 0; anything else is ignored), before it looks
        // for the name, and after quota admission charged it: a 500 with no
        // reason, as its plain error becomes.
        let rv = meta_mut(&mut obj).remove("resourceVersion");
        if rv.as_ref().and_then(Value::as_str).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v != 0) {
            let refused = ApiError::new(500, "", "resourceVersion should not be set on objects to be created");
            return Err(self.refused_after_quota(def, ns, &name, &obj, dry_run, refused));
        }
        let scope_ns = if def.namespaced { ns } else { "" };
        if self.store.get(res, scope_ns, &name).is_some() {
            let prefix = meta_str(&obj, "generateName").unwrap_or("").to_string();
            if !generated {
                let taken = ApiError::already_exists(&def.group, &def.plural, &name);
                return Err(self.refused_after_quota(def, ns, &name, &obj, dry_run, taken));
            }
            for _ in 0..8 {
                name = format!("{prefix}{}", random_suffix());
                if self.store.get(res, scope_ns, &name).is_none() {
                    break;
                }
            }
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        if def.group.is_empty() && def.plural == "services" {
            admission::allocate_service(self, &name, ns, &mut obj, None)?;
        }
        let charges = admission::quota(self, def, ns, &name, &obj, None)?;
        if dry_run {
            return Ok(Arc::new(self.encode(def, &obj, 0)));
        }
        let out = self.insert_new(res, def, ns, obj);
        self.charge_quotas(ns, charges);
        Ok(out)
    }

    /// An object being deleted with no finalizers left and no grace pending is removed.
    pub(crate) fn finalized(&self, def: &ResourceDef, v: &Value) -> bool {
        if v.pointer("/metadata/deletionTimestamp").is_none() {
            return false;
        }
        let fins = v.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let grace = v.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
        let ns_fins = def.group.is_empty()
            && def.plural == "namespaces"
            && v.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        !fins && !ns_fins && grace == 0
    }
}

/// Upstream's server-side apply builds a typed object from the applied
/// configuration with the resource's schema: a custom resource's field its
/// schema does not declare fails that (whatever `fieldValidation` says) with
/// a plain error, so a 500 without a reason (kubernetes/kubernetes#139253).
fn undeclared_fields(def: &ResourceDef, version: &str, ns: &str, name: &str, applied: &Value) -> ApiResult<()> {
    let Some(schema) = def.schema(version) else { return Ok(()) };
    let checked = crate::schema::check(schema, &mut applied.clone());
    let Some(first) = checked.pruned.first() else { return Ok(()) };
    let gv = if def.group.is_empty() { version.to_string() } else { format!("{}/{version}", def.group) };
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({ns}/{name}; {gv}, Kind={}): .{first}: field not declared in schema",
            def.kind
        ),
    ))
}

/// Defaults, prunes and validates a custom resource against its schema and its
/// validation rules (`old` on an update, for transition rules); a CRD's rules
/// must compile for the emulated version.
pub(super) fn check_schema(
    def: &ResourceDef,
    version: &str,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &WriteOpts,
) -> ApiResult<()> {
    if def.is("apiextensions.k8s.io", "customresourcedefinitions") {
        let errs = crate::rules::check_crd(obj, opts.kube);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, name, errs));
        }
    }
    let Some(schema) = def.schema(version) else { return Ok(()) };
    let mut checked = crate::schema::check(schema, obj);
    if opts.strict && !checked.pruned.is_empty() {
        let list: Vec<String> = checked.pruned.iter().map(|p| format!("unknown field {p:?}")).collect();
        return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
    }
    if checked.errors.is_empty() {
        checked.errors = crate::rules::evaluate(schema, obj, old, opts.kube);
    }
    if !checked.errors.is_empty() {
        return Err(ApiError::invalid(&def.group, &def.kind, name, checked.errors));
    }
    Ok(())
}

/// The pure first step of a create: type, namespace, name (generateName),
/// server-set metadata, kind-specific preparation and defaulting.
fn prepare_create(
    def: &ResourceDef,
    version: &str,
    ns: &str,
    mut obj: Value,
    applied: bool,
) -> ApiResult<(Value, bool)> {
    check_type(def, version, &mut obj)?;
    let mut generated = false;
    {
        let meta = meta_mut(&mut obj);
        if def.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if name.is_empty()
            && let Some(g) = meta.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty())
        {
            let candidate = format!("{g}{}", random_suffix());
            meta.insert("name".into(), json!(candidate));
            generated = true;
        }
        // resourceVersion stays until the commit, which refuses a create
        // that sets one (upstream's storage does, after admission).
        for k in ["uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(k);
        }
        if !applied {
            meta.remove("managedFields");
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if def.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if def.status_subresource
        && !(def.group.is_empty() && def.plural == "nodes")
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    // Finalizers upstream adds on create: StorageObjectInUseProtection for
    // claims, the custom-resource cleanup for CRDs.
    let create_finalizer = match (def.group.as_str(), def.plural.as_str()) {
        ("", "persistentvolumeclaims") => Some(crate::sim::storage::PVC_PROTECTION),
        ("apiextensions.k8s.io", "customresourcedefinitions") => Some(crate::sim::crds::CLEANUP_FINALIZER),
        _ => None,
    };
    if let Some(f) = create_finalizer {
        let fins = meta_mut(&mut obj).entry("finalizers").or_insert_with(|| json!([]));
        if let Some(a) = fins.as_array_mut()
            && !a.iter().any(|x| x == f)
        {
            a.push(json!(f));
        }
    }
    if def.group.is_empty() && def.plural == "namespaces" {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    }
    prepare(def, &mut obj);
    defaults::apply(&def.group, &def.kind, &mut obj);
    Ok((obj, generated))
}

/// The pure last step before committing a create: validation and field ownership.
fn finish_create(
    def: &ResourceDef,
    version: &str,
    name: &str,
    obj: &mut Value,
    opts: &WriteOpts,
    applied: bool,
) -> ApiResult<()> {
    check_schema(def, version, name, obj, None, opts)?;
    let errs = validation::validate(def, obj, None);
    if !errs.is_empty() {
        return Err(ApiError::invalid(&def.group, &def.kind, name, errs));
    }
    if !applied {
        let scope = fieldmanager::Scope { def, version, subresource: None };
        fieldmanager::track_update(&scope, &json!({}), obj, &opts.manager_name(), &now_rfc3339());
    }
    Ok(())
}

impl Cluster {
    /// POST. The pure steps run outside the lock; mutating admission under the
    /// read lock; quota, allocation and the write under the write lock.
    pub fn create(&self, res: ResId, version: &str, ns: &str, obj: Value, opts: &WriteOpts) -> ApiResult<Arc<Obj>> {
        let opts = &opts.on(self);
        let def = self.def(res).ok_or_else(ApiError::unknown_path)?;
        let (obj, generated) = self.admitted_create(&def, version, ns, obj, opts, false)?;
        self.state.write().commit_create(res, &def, ns, obj, generated, opts.dry_run)
    }

    /// A create up to its commit: the pure steps outside the lock, mutating
    /// admission under the read lock. Returns the object and whether its
    /// name was generated. `applied`: the object comes from an apply patch.
    fn admitted_create(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        obj: Value,
        opts: &WriteOpts,
        applied: bool,
    ) -> ApiResult<(Value, bool)> {
        let (mut obj, generated) = prepare_create(def, version, ns, obj, applied)?;
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        self.state.read().admit_create_mutating(def, ns, &name, &mut obj)?;
        finish_create(def, version, &name, &mut obj, opts, applied)?;
        Ok((obj, generated))
    }

    /// PATCH of any type; an apply patch creates the object when it is missing.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        res: ResId,
        version: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        content_type: &str,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Obj>> {
        let opts = &opts.on(self);
        let def = self.def(res).ok_or_else(ApiError::unknown_path)?;
        let pt = patch::patch_type(&def, content_type)?;
        if pt == PatchType::Apply {
            return self.apply(res, &def, version, ns, name, sub, body, opts);
        }
        let view = View { def: &def, version, to_view: &|v: &Value| v.clone(), to_stored: &|v, _| Ok(v) };
        self.patch_viewed(res, ns, name, sub, &view, version, pt, body, opts)
    }

    /// A non-apply PATCH of an object as `view` shows it (another API's form
    /// of the stored objects, as events.k8s.io's of core Events), stored in
    /// `stored_version`. Patches see the object with its resourceVersion (JSON
    /// patch `test` operations often check it); a changed resourceVersion is
    /// a precondition.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_viewed(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        view: &View,
        stored_version: &str,
        pt: PatchType,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Obj>> {
        let opts = &opts.on(self);
        self.guaranteed_update(res, ns, name, Some(stored_version), sub, opts, true, |def, current| {
            let mut patched = patch::apply_patch(view.def, view.version, &(view.to_view)(current), pt, body)?;
            let stored = meta_str(current, "resourceVersion").unwrap_or("");
            if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|s| !s.is_empty())
                && rv != stored
            {
                return Err(ApiError::stale(&def.group, &def.plural, name));
            }
            if let Some(m) = patched.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            (view.to_stored)(patched, current)
        })
    }
}

/// The object an apply patch asks for: `applied` merged into `live` (the
/// stored object without its resourceVersion, or null) by field ownership.
#[allow(clippy::too_many_arguments)]
fn merge_applied(
    def: &ResourceDef,
    version: &str,
    name: &str,
    sub: Option<&str>,
    live: &Value,
    applied: &Value,
    manager: &str,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let scope = fieldmanager::Scope { def, version, subresource: sub };
    let outcome = fieldmanager::apply(&scope, live, applied, manager, opts.force, &now_rfc3339());
    if !outcome.conflicts.is_empty() {
        let mut e = ApiError::new(409, "Conflict", fieldmanager::conflict_message(&outcome.conflicts));
        let causes: Vec<Value> = outcome
            .conflicts
            .iter()
            .map(|(m, v, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?} using {v}"), "field": fieldmanager::render_path(p)}))
            .collect();
        e.details = Some(json!({"name": name, "group": def.group, "kind": def.plural, "causes": causes}));
        return Err(e);
    }
    let mut obj = outcome.object;
    meta_mut(&mut obj).insert("name".into(), json!(name));
    Ok(obj)
}

impl Cluster {
    /// Server-side apply, as a GuaranteedUpdate: the merge by field ownership,
    /// defaulting and validation run outside the store's lock on the object
    /// as read, and the result is committed only if the object is still as
    /// read (still missing, for a create); otherwise it is merged again.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        res: ResId,
        def: &Arc<ResourceDef>,
        version: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Obj>> {
        let manager = opts.field_manager.clone().filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::invalid(
                &def.group,
                &def.kind,
                name,
                vec![FieldError::required("fieldManager", "is required for apply patch")],
            )
        })?;
        let mut applied = patch::parse_body(body, true)?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        for k in ["apiVersion", "kind"] {
            if applied.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "error decoding patch: Object '{}' is missing in the apply patch",
                    if k == "kind" { "Kind" } else { "apiVersion" }
                )));
            }
        }
        check_type(def, version, &mut applied)?;
        undeclared_fields(def, version, ns, name, &applied)?;
        if let Some(n) = meta_str(&applied, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let key = State::key(def, ns, name);
        for _ in 0..super::update::ROUNDS {
            let old = self.state.read().store.get(res, &key.0, &key.1).cloned();
            // A resourceVersion is a precondition on an existing object; on a
            // missing one the create refuses it (see `commit_create`).
            if let Some(rv) = meta_str(&applied, "resourceVersion").filter(|s| !s.is_empty())
                && old.as_ref().is_some_and(|o| o.rv.to_string() != rv)
            {
                return Err(ApiError::stale(&def.group, &def.plural, name));
            }
            let Some(old) = old else {
                if sub.is_some() {
                    return Err(ApiError::not_found(&def.group, &def.plural, name));
                }
                let obj = merge_applied(def, version, name, sub, &Value::Null, &applied, &manager, opts)?;
                let (obj, generated) = self.admitted_create(def, version, ns, obj, opts, true)?;
                let mut st = self.state.write();
                if st.store.get(res, &key.0, &key.1).is_some() {
                    continue;
                }
                return st.commit_create(res, def, ns, obj, generated, opts.dry_run);
            };
            let old_v = old.value();
            let mut live = old_v.clone();
            meta_mut(&mut live).remove("resourceVersion");
            let obj = merge_applied(def, version, name, sub, &live, &applied, &manager, opts)?;
            if let Some(done) = self.commit_if_unchanged(res, def, version, &old, old_v, obj, sub, opts, false)? {
                return Ok(done);
            }
        }
        Err(ApiError::stale(&def.group, &def.plural, name))
    }
}
