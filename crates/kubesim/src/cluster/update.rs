//! Updates: PUT, the status and finalize subresources, and the commit of
//! every patch (server-side apply included). They run as upstream's GuaranteedUpdate: the new state is
//! computed from the object as read, outside the store's lock, and committed
//! only if the object is still at that resourceVersion (otherwise computed
//! again from the newer one); resourceVersion preconditions make that a 409.

use super::write::{WriteOpts, check_schema, check_type, meta_mut, meta_str, prepare};
use super::{Cluster, State, now_rfc3339};
use crate::admission;
use crate::defaults;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::patch::fieldmanager;
use crate::registry::{ResId, ResourceDef};
use crate::store::Obj;
use crate::validation;
use quantity::Quantity;
use serde_json::{Value, json};
use std::sync::Arc;

/// The generation-relevant content: everything but metadata (and status when it
/// is a subresource).
fn spec_part(def: &ResourceDef, v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if def.status_subresource {
            m.remove("status");
        }
    }
    c
}

impl State {
    /// Whether the object is still stored at resourceVersion `rv`.
    fn still_at(&self, res: ResId, def: &ResourceDef, ns: &str, name: &str, rv: u64) -> bool {
        let key = State::key(def, ns, name);
        self.store.get(res, &key.0, &key.1).is_some_and(|o| o.rv == rv)
    }

    /// Validation and admission of an update.
    fn admit_update(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &mut Value,
        old: &Value,
    ) -> ApiResult<admission::QuotaCharges> {
        let core = def.group.is_empty();
        validate_update(def, name, obj, old)?;
        if core && def.plural == "persistentvolumeclaims" {
            check_expansion(self, name, obj, old)?;
        }
        if core && def.plural == "services" {
            admission::allocate_service(self, name, ns, obj, Some(old))?;
        }
        admission::quota(self, def, ns, name, obj, Some(old))
    }

    /// Commits a new state of an existing object, all under the write lock
    /// (server-side apply, and the types whose admission allocates).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update_locked(
        &mut self,
        res: ResId,
        version: &str,
        old: &Arc<Obj>,
        new: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        track: bool,
    ) -> ApiResult<Arc<Obj>> {
        let def = self.registry.get(res).cloned().ok_or_else(ApiError::unknown_path)?;
        match prepare_update(&def, Some(self), version, old, old.value(), new, sub, opts, track)? {
            Prepared::Unchanged(o) => Ok(o),
            Prepared::Write(u) => self.commit_update(res, u, opts.dry_run),
        }
    }

    /// The part of an update that must be atomic with the store: the quota
    /// check (when [`prepare_update`] ran without the state) and the write.
    fn commit_update(&mut self, res: ResId, u: Update, dry_run: bool) -> ApiResult<Arc<Obj>> {
        let Update { def, ns, name, mut new, old_v, charges, status_only } = u;
        let charges = match charges {
            Some(c) => c,
            None => admission::quota(self, &def, &ns, &name, &new, Some(&old_v))?,
        };
        if dry_run {
            return Ok(Arc::new(self.encode(&def, &new, 0)));
        }
        let key = State::key(&def, &ns, &name);
        if self.finalized(&def, &new) {
            let rv = self.store.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            let last = Arc::new(self.encode(&def, &new, rv));
            self.store.remove(res, &key, last.clone());
            return Ok(last);
        }
        let rv = self.store.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let o = self.encode(&def, &new, rv);
        let stored = if status_only { self.store.put_status(res, key, o) } else { self.store.put(res, key, o) };
        self.charge_quotas(&ns, charges);
        Ok(stored)
    }
}

/// What an update writes, computed from the object as it was at one resourceVersion.
pub(crate) struct Update {
    def: Arc<ResourceDef>,
    ns: String,
    name: String,
    new: Value,
    old_v: Value,
    /// Quota charges, when admission already ran against the state.
    charges: Option<admission::QuotaCharges>,
    /// A write to the status subresource.
    status_only: bool,
}

pub(crate) enum Prepared {
    /// Nothing changes: no write, no event (as upstream's no-op updates).
    Unchanged(Arc<Obj>),
    Write(Update),
}

/// The types whose update admission reads or allocates from the rest of the
/// state (service IPs, volume expansion): updated wholly under the write lock.
fn locked_update(def: &ResourceDef) -> bool {
    def.group.is_empty() && matches!(def.plural.as_str(), "services" | "persistentvolumeclaims")
}

/// The new state of `old` an update, patch or status write makes: checks,
/// subresource rules, server-owned metadata, generation, defaulting, schema,
/// validation and field ownership. Without `st`, quota admission is left to
/// the commit, which runs under the write lock.
#[allow(clippy::too_many_arguments)]
fn prepare_update(
    def: &Arc<ResourceDef>,
    st: Option<&State>,
    version: &str,
    old: &Arc<Obj>,
    old_v: Value,
    mut new: Value,
    sub: Option<&str>,
    opts: &WriteOpts,
    track: bool,
) -> ApiResult<Prepared> {
    let name = meta_str(&old_v, "name").unwrap_or("").to_string();
    let ns = meta_str(&old_v, "namespace").unwrap_or("").to_string();
    check_type(def, version, &mut new)?;
    if let Some(n) = meta_str(&new, "name")
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty())
        && rv != old.rv.to_string()
    {
        return Err(ApiError::stale(&def.group, &def.plural, &name));
    }
    // What the subresource may change.
    match sub {
        Some("status") => {
            let status = new.get("status").cloned();
            let mut merged = old_v.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
            new = merged;
        }
        Some("finalize") => {
            let fins = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            let mut merged = old_v.clone();
            merged["spec"]["finalizers"] = fins;
            new = merged;
        }
        // Internal writes (the scheduler's binding, the kubelet) that set spec and status together.
        Some("binding") => {}
        Some(other) => {
            return Err(ApiError::not_found(&def.group, &format!("{}/{other}", def.plural), &name));
        }
        None => {
            if def.status_subresource
                && let Some(m) = new.as_object_mut()
            {
                match old_v.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
        }
    }
    // Server-owned metadata is preserved.
    {
        let old_meta = old_v.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
        let meta = meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if !meta.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            meta.insert("managedFields".into(), mf.clone());
        }
        meta.remove("resourceVersion");
    }
    // Finalizers may not be added to an object that is being deleted.
    if old_v.pointer("/metadata/deletionTimestamp").is_some() {
        let before: Vec<&Value> = old_v
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let after = new.pointer("/metadata/finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
        if after.iter().any(|f| !before.contains(&f)) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                vec![FieldError::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )],
            ));
        }
    }
    if def.generation && sub.is_none() && spec_part(def, &new) != spec_part(def, &old_v) {
        let g = old_v.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    prepare(def, &mut new);
    defaults::apply(&def.group, &def.kind, &mut new);
    check_schema(def, version, &name, &mut new, (sub.is_none()).then_some(&old_v), opts)?;
    let charges = match st {
        Some(st) => Some(st.admit_update(def, &ns, &name, &mut new, &old_v)?),
        None => {
            validate_update(def, &name, &new, &old_v)?;
            None
        }
    };
    if track {
        let scope = fieldmanager::Scope { def, version, subresource: sub };
        let mut old_for_diff = old_v.clone();
        meta_mut(&mut old_for_diff).remove("resourceVersion");
        fieldmanager::track_update(&scope, &old_for_diff, &mut new, &opts.manager_name(), &now_rfc3339());
    }
    // Nothing changed: no write, no event (as upstream's no-op updates).
    let mut cmp_old = old_v.clone();
    meta_mut(&mut cmp_old).remove("resourceVersion");
    if cmp_old == new {
        return Ok(Prepared::Unchanged(old.clone()));
    }
    Ok(Prepared::Write(Update { def: def.clone(), ns, name, new, old_v, charges, status_only: sub == Some("status") }))
}

/// The type's validation of an update, as a 422 naming every field.
fn validate_update(def: &ResourceDef, name: &str, obj: &Value, old: &Value) -> ApiResult<()> {
    let errs = validation::validate(def, obj, Some(old));
    if !errs.is_empty() {
        return Err(ApiError::invalid(&def.group, &def.kind, name, errs));
    }
    if let Some((hook, errs)) = validation::webhooks::update(def, obj, old) {
        let mut e = ApiError::invalid(&def.group, &def.kind, name, errs);
        e.message = format!("admission webhook {hook:?} denied the request: {}", e.message);
        return Err(e);
    }
    Ok(())
}

fn check_expansion(st: &State, name: &str, obj: &Value, old: &Value) -> ApiResult<()> {
    let new_q = obj.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value);
    let old_q = old.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value);
    if let (Some(n), Some(o)) = (new_q, old_q)
        && n > o
    {
        let class = obj.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or("");
        let expandable = st
            .get_value("storage.k8s.io", "storageclasses", "", class)
            .and_then(|sc| sc.get("allowVolumeExpansion").and_then(Value::as_bool))
            .unwrap_or(false);
        if !expandable {
            return Err(ApiError::forbidden(
                "",
                "persistentvolumeclaims",
                name,
                "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
            ));
        }
    }
    Ok(())
}

/// Rounds a write is computed again after losing to a write on the same object
/// in between; this many in a row is a hot spot the client should see (409).
pub(super) const ROUNDS: usize = 64;

impl Cluster {
    /// Atomically changes an object with `f` (None when nothing changed).
    /// `sub` is "status" for status-only writes or "binding" for internal
    /// writes that may change spec and status at once.
    pub fn modify(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        manager: &str,
        mut f: impl FnMut(&mut Value),
    ) -> ApiResult<Option<Arc<Obj>>> {
        let opts = WriteOpts { kube: self.config.kubernetes_version, ..WriteOpts::manager(manager) };
        let mut unchanged = false;
        let out = self.guaranteed_update(res, ns, name, None, sub, &opts, true, |_, before| {
            let mut v = before.clone();
            f(&mut v);
            unchanged = v == *before;
            Ok(v)
        })?;
        Ok((!unchanged).then_some(out))
    }

    /// Upstream's GuaranteedUpdate: the new state is computed from the object
    /// as read, outside the lock, and committed only if the object is still
    /// at that resourceVersion; otherwise it is computed again from the newer
    /// state. Writes to different objects so run side by side, and the write
    /// lock is held only for the commit. `next` gets the type and the object
    /// (its resourceVersion included) and returns the requested new state.
    /// `version` is the request's API version (None: the storage version).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn guaranteed_update(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        version: Option<&str>,
        sub: Option<&str>,
        opts: &WriteOpts,
        track: bool,
        mut next: impl FnMut(&Arc<ResourceDef>, &Value) -> ApiResult<Value>,
    ) -> ApiResult<Arc<Obj>> {
        for _ in 0..ROUNDS {
            let (def, old) = self.state.read().existing(res, ns, name)?;
            let version = version.unwrap_or_else(|| def.storage_version()).to_string();
            let old_v = old.value();
            let new = next(&def, &old_v)?;
            if let Some(done) = self.commit_if_unchanged(res, &def, &version, &old, old_v, new, sub, opts, track)? {
                return Ok(done);
            }
        }
        let def = self.def(res).ok_or_else(ApiError::unknown_path)?;
        Err(ApiError::stale(&def.group, &def.plural, name))
    }

    /// Commits `new`, computed from `old` (parsed: `old_v`), if the object is
    /// still at `old`'s resourceVersion: the checks and field ownership run
    /// before the write lock is taken. None when the object changed in between.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_if_unchanged(
        &self,
        res: ResId,
        def: &Arc<ResourceDef>,
        version: &str,
        old: &Arc<Obj>,
        old_v: Value,
        new: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        track: bool,
    ) -> ApiResult<Option<Arc<Obj>>> {
        if locked_update(def) {
            let (ns, name) = (meta_str(&old_v, "namespace").unwrap_or(""), meta_str(&old_v, "name").unwrap_or(""));
            let mut st = self.state.write();
            if !st.still_at(res, def, ns, name, old.rv) {
                return Ok(None);
            }
            return st.update_locked(res, version, old, new, sub, opts, track).map(Some);
        }
        let u = match prepare_update(def, None, version, old, old_v, new, sub, opts, track)? {
            Prepared::Unchanged(o) => return Ok(Some(o)),
            Prepared::Write(u) => u,
        };
        let mut st = self.state.write();
        if !st.still_at(res, def, &u.ns, &u.name, old.rv) {
            return Ok(None);
        }
        st.commit_update(res, u, opts.dry_run).map(Some)
    }

    /// PUT: replaces the object (or its status/finalize subresource).
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        res: ResId,
        version: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Obj>> {
        let opts = &opts.on(self);
        self.guaranteed_update(res, ns, name, Some(version), sub, opts, true, |_, _| Ok(obj.clone()))
    }
}
