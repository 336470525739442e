//! Deletion: preconditions, graceful pod deletion, finalizers, propagation
//! policies (the garbage collector does the cascading) and deletecollection.

use super::{Cluster, ListOpts, State, now_rfc3339};
use crate::admission::PROTECTED_NAMESPACES;
use crate::error::{ApiError, ApiResult};
use crate::registry::ResId;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    pub grace_period: Option<i64>,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

pub enum DeleteOutcome {
    /// Removed now; the last state of the object.
    Deleted(Value),
    /// Still present (finalizers or a grace period pending); its current state.
    Pending(Value),
}

impl DeleteOutcome {
    pub fn into_value(self) -> Value {
        match self {
            DeleteOutcome::Deleted(v) | DeleteOutcome::Pending(v) => v,
        }
    }
}

impl State {
    pub(crate) fn delete_locked(
        &mut self,
        res: ResId,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<DeleteOutcome> {
        let (def, old) = self.existing(res, ns, name)?;
        let key = State::key(&def, ns, name);
        let mut v = old.value();
        if let Some(uid) = &opts.precondition_uid
            && *uid != *old.uid
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", old.uid),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && *rv != old.rv.to_string()
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    old.rv
                ),
            ));
        }
        let is_ns = def.group.is_empty() && def.plural == "namespaces";
        if is_ns && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden("", "namespaces", name, "this namespace may not be deleted"));
        }
        let is_pod = def.group.is_empty() && def.plural == "pods";
        let meta = v
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
        let mut finalizers: Vec<String> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let already_deleting = meta.contains_key("deletionTimestamp");
        match opts.propagation {
            Some(Propagation::Orphan) if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.retain(|f| f != "foregroundDeletion");
                finalizers.push("orphan".into());
            }
            Some(Propagation::Foreground) if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.retain(|f| f != "orphan");
                finalizers.push("foregroundDeletion".into());
            }
            Some(Propagation::Background) => finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion"),
            _ => {}
        }
        // Grace: pods that run on a node terminate gracefully.
        let mut grace = 0;
        if is_pod {
            let scheduled = v.pointer("/spec/nodeName").is_some();
            let phase = v.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
            let terminal = phase == "Succeeded" || phase == "Failed";
            let default_grace = v.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
            grace = opts.grace_period.unwrap_or(default_grace).max(0);
            if !scheduled || terminal {
                grace = 0;
            }
            // A second delete may only shorten the grace period.
            if let Some(cur) = v.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) {
                grace = grace.min(cur);
            }
        }
        let meta = v
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
        if finalizers.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(finalizers));
        }
        let ns_pending = is_ns; // the namespace controller empties it first
        if finalizers.is_empty() && grace == 0 && !ns_pending {
            if opts.dry_run {
                return Ok(DeleteOutcome::Deleted(v));
            }
            let rv = self.store.next_rv();
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            if !already_deleting {
                meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            let last = std::sync::Arc::new(self.encode(&def, &v, rv));
            self.store.remove(res, &key, last);
            return Ok(DeleteOutcome::Deleted(v));
        }
        if !already_deleting {
            let ts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            meta.insert("deletionTimestamp".into(), json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if is_ns {
            v["status"]["phase"] = json!("Terminating");
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Pending(v));
        }
        let mut cmp = old.value();
        if cmp == v {
            return Ok(DeleteOutcome::Pending(v));
        }
        let rv = self.store.next_rv();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        let o = self.encode(&def, &v, rv);
        self.store.put(res, key, o);
        cmp = v;
        Ok(DeleteOutcome::Pending(cmp))
    }
}

impl Cluster {
    pub fn delete(&self, res: ResId, ns: &str, name: &str, opts: &DeleteOpts) -> ApiResult<DeleteOutcome> {
        self.state.write().delete_locked(res, ns, name, opts)
    }

    /// Deletes every object matching the list options; returns how many.
    pub fn delete_collection(
        &self,
        res: ResId,
        ns: Option<&str>,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> ApiResult<Vec<serde_json::Value>> {
        let items = self.list(res, ns, &ListOpts { limit: None, continue_token: None, ..list.clone() })?.items;
        let mut st = self.state.write();
        let mut out = Vec::new();
        for o in items {
            let v = o.value();
            let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let ons = v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
            match st.delete_locked(res, &ons, &name, opts) {
                Ok(x) => out.push(x.into_value()),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
