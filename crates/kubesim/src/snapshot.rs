//! `--state-file`: the whole store written on clean shutdown and loaded on start.
//! Watch history is not kept: a watch resuming from before the restart gets 410.

use crate::cluster::Cluster;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

pub fn save(cluster: &Cluster, path: &Path) -> Result<(), String> {
    let (rv, objects) = cluster.read(|st| {
        let objects: Vec<Value> = st
            .store
            .all()
            .filter_map(|(res, o)| {
                let def = st.registry.get(res)?;
                Some(json!({"group": def.group, "plural": def.plural, "object": o.value()}))
            })
            .collect();
        (st.store.rv(), objects)
    });
    let doc = json!({"kind": "KubesimState", "version": 1, "resourceVersion": rv, "objects": objects});
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(&doc).map_err(|e| e.to_string())?)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "state saved");
    Ok(())
}

pub fn load(cluster: &Cluster, path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_slice(&text).map_err(|e| format!("not a kubesim state file: {e}"))?;
    if doc.get("kind").and_then(Value::as_str) != Some("KubesimState") {
        return Err("not a kubesim state file (kind is not KubesimState)".into());
    }
    let objects = doc.get("objects").and_then(Value::as_array).ok_or("objects missing")?;
    // Custom resource types first, so their objects have somewhere to go.
    for o in objects {
        if o.get("group").and_then(Value::as_str) == Some("apiextensions.k8s.io") {
            let crd = o.get("object").ok_or("entry without object")?;
            let established = crd
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c.get("type").and_then(Value::as_str) == Some("Established")));
            if established {
                cluster.register_crd(crd)?;
            }
        }
    }
    let mut st = cluster.state.write();
    for o in objects {
        let group = o.get("group").and_then(Value::as_str).unwrap_or("");
        let plural = o.get("plural").and_then(Value::as_str).unwrap_or("");
        let mut obj = o.get("object").ok_or("entry without object")?;
        // Saved by a kubesim that stored events.k8s.io Events apart: one store now.
        let converted;
        let (group, plural) = if (group, plural) == ("events.k8s.io", "events") {
            converted = crate::eventview::to_core(obj);
            obj = &converted;
            ("", "events")
        } else {
            (group, plural)
        };
        let Some((id, def)) = st.res(group, plural) else {
            return Err(format!("unknown resource {plural}.{group} in state file"));
        };
        let rv: u64 =
            obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(1);
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let key = crate::cluster::State::key(&def, ns, name);
        let enc = st.encode(&def, obj, rv);
        st.store.put(id, key, enc);
    }
    let rv = doc.get("resourceVersion").and_then(Value::as_u64).unwrap_or(1);
    st.store.set_rv(rv);
    tracing::info!(path = %path.display(), objects = objects.len(), "state loaded");
    Ok(())
}
