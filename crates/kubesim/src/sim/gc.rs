//! The garbage collector: dependents of a deleted owner are deleted (or lose the
//! reference when another owner remains); `foregroundDeletion` owners wait for
//! their dependents; `orphan` owners release them first. Owner references that
//! point nowhere — including across namespaces, which upstream does not allow —
//! count as missing.

use super::{Sim, Timer, is_deleting, log_err, name_of, ns_of, uid_of};
use crate::cluster::{DeleteOpts, Propagation, State};
use crate::registry::ResId;
use crate::store::{Event, EventType, Key};
use serde_json::Value;
use std::time::Duration;

/// Whether `owner_uid` names an object a dependent in `dep_ns` may be owned by.
fn owner_valid(st: &State, dep_ns: &str, owner_uid: &str) -> bool {
    let Some((res, key)) = st.store.by_uid(owner_uid) else {
        return false;
    };
    match st.registry.get(*res) {
        Some(def) if def.namespaced => !dep_ns.is_empty() && &*key.0 == dep_ns,
        Some(_) => true,
        None => false,
    }
}

fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn remove_finalizer(sim: &Sim, res: ResId, v: &Value, fin: &str) {
    log_err(
        "remove finalizer",
        sim.c.modify(res, ns_of(v), name_of(v), None, "generic-garbage-collector", |o| {
            if let Some(a) = o.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                a.retain(|f| f.as_str() != Some(fin));
            }
        }),
    );
}

fn remove_owner_ref(sim: &Sim, res: ResId, key: &Key, owner_uid: &str) {
    log_err(
        "remove owner reference",
        sim.c.modify(res, &key.0, &key.1, None, "generic-garbage-collector", |o| {
            if let Some(a) = o.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                a.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
        }),
    );
}

/// A dependent whose owner `gone_uid` is gone.
fn owner_gone(sim: &Sim, res: ResId, key: &Key, gone_uid: &str, propagation: Propagation) {
    let Some(dep) = sim.c.read(|st| st.store.get(res, &key.0, &key.1).map(|o| o.value())) else {
        return;
    };
    let others = sim.c.read(|st| {
        dep.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("uid").and_then(Value::as_str))
            .any(|u| u != gone_uid && owner_valid(st, &key.0, u))
    });
    if others {
        remove_owner_ref(sim, res, key, gone_uid);
    } else if !is_deleting(&dep) {
        sim.delete(res, &key.0, &key.1, DeleteOpts { propagation: Some(propagation), ..Default::default() });
    }
}

/// The GC's part of a watch event. It reads what the store noted of the
/// object (uid, owners, deletion); `v`, the decoded object, is needed only
/// when it is being deleted (for its finalizers).
pub fn on_event(sim: &Sim, ev: &Event, v: Option<&Value>) {
    let uid = &*ev.obj.uid;
    match ev.typ {
        EventType::Deleted => {
            for (res, key) in sim.c.read(|st| st.store.dependents_of(uid)) {
                owner_gone(sim, res, &key, uid, Propagation::Background);
            }
            // Owners deleting in the foreground may now be free to go.
            for owner in ev.obj.owners.iter() {
                let found = sim.c.read(|st| st.store.by_uid(owner).cloned());
                if let Some((res, key)) = found
                    && let Some(o) =
                        sim.c.read(|st| st.store.get(res, &key.0, &key.1).filter(|o| o.deleting).map(|o| o.value()))
                {
                    foreground(sim, res, &o);
                }
            }
        }
        EventType::Added | EventType::Modified => {
            if ev.obj.deleting
                && let Some(v) = v
            {
                let fins = finalizers(v);
                if fins.iter().any(|f| f == "orphan") {
                    for (res, key) in sim.c.read(|st| st.store.dependents_of(uid)) {
                        remove_owner_ref(sim, res, &key, uid);
                    }
                    remove_finalizer(sim, ev.res, v, "orphan");
                }
                if fins.iter().any(|f| f == "foregroundDeletion") {
                    foreground(sim, ev.res, v);
                }
            }
            if ev.typ == EventType::Added && !ev.obj.owners.is_empty() {
                // Give a concurrent owner creation a moment, as upstream's GC does by re-checking live.
                sim.after(
                    Duration::from_millis(50),
                    Timer::OrphanCheck {
                        res: ev.res,
                        ns: ev.ns.to_string(),
                        name: ev.name.to_string(),
                        uid: uid.into(),
                    },
                );
            }
        }
    }
}

fn foreground(sim: &Sim, res: ResId, owner: &Value) {
    if !is_deleting(owner) || !finalizers(owner).iter().any(|f| f == "foregroundDeletion") {
        return;
    }
    let uid = uid_of(owner);
    let deps = sim.c.read(|st| st.store.dependents_of(uid));
    let mut blocking = 0;
    for (dres, key) in &deps {
        let Some(d) = sim.c.read(|st| st.store.get(*dres, &key.0, &key.1).map(|o| o.value())) else {
            continue;
        };
        let blocks = d.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten().any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(uid)
                && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
        });
        if blocks {
            blocking += 1;
        }
        if !is_deleting(&d) {
            sim.delete(
                *dres,
                &key.0,
                &key.1,
                DeleteOpts { propagation: Some(Propagation::Foreground), ..Default::default() },
            );
        }
    }
    if blocking == 0 {
        remove_finalizer(sim, res, owner, "foregroundDeletion");
    }
}

/// Deletes an object none of whose owners exist (any more, or validly).
pub fn orphan_check(sim: &Sim, res: ResId, ns: &str, name: &str, uid: &str) {
    // The owners' uids as the store noted them: no decode.
    let Some(refs) = sim
        .c
        .read(|st| st.store.get(res, ns, name).filter(|o| &*o.uid == uid && !o.deleting).map(|o| o.owners.clone()))
    else {
        return;
    };
    if refs.is_empty() {
        return;
    }
    let valid: Vec<bool> = sim.c.read(|st| refs.iter().map(|u| owner_valid(st, ns, u)).collect());
    if valid.iter().all(|x| !x) {
        tracing::debug!(ns, name, "garbage collecting an object whose owners do not exist");
        sim.delete(res, ns, name, DeleteOpts { propagation: Some(Propagation::Background), ..Default::default() });
    } else if valid.iter().any(|x| !x) {
        let key: Key = (ns.into(), name.into());
        for (u, ok) in refs.iter().zip(valid) {
            if !ok {
                remove_owner_ref(sim, res, &key, u);
            }
        }
    }
}
