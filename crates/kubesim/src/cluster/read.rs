//! Reads: get, list (selectors, pagination, resourceVersion semantics) and the
//! start of a watch (history replay or synthetic ADDED events).

use super::Cluster;
use crate::error::{ApiError, ApiResult, qualified};
use crate::registry::{ResId, ResourceDef};
use crate::selector::Selector;
use crate::store::{Event, EventType, Key, Obj};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, Default, Clone)]
pub struct ListOpts {
    pub label: Selector,
    pub field: Selector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

pub struct ListResult {
    pub items: Vec<Arc<Obj>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

pub struct WatchStart {
    pub initial: Vec<(EventType, Arc<Obj>)>,
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The rv the initial state corresponds to (for the initial-events-end bookmark).
    pub rv: u64,
}

/// Whether an object passes label and field selectors.
pub fn matches(def: &ResourceDef, o: &Obj, key: (&str, &str), label: &Selector, field: &Selector) -> bool {
    if !label.matches_labels(&o.labels) {
        return false;
    }
    if field.is_empty() {
        return true;
    }
    field.reqs.iter().all(|r| {
        r.matches(&|k: &str| match k {
            "metadata.name" => Some(key.1.to_string()),
            "metadata.namespace" => Some(key.0.to_string()),
            other => {
                def.field_selectors.iter().position(|f| f == other).and_then(|i| o.fields.get(i)).map(|v| v.to_string())
            }
        })
    })
}

pub fn field_supported(def: &ResourceDef, k: &str) -> bool {
    k == "metadata.name" || k == "metadata.namespace" || def.field_selectors.iter().any(|f| f == k)
}

fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse::<u64>().map_err(|_| {
        ApiError::invalid(
            "",
            "ListOptions",
            "",
            vec![crate::error::FieldError::invalid("resourceVersion", s, "must be an integer")],
        )
    })
}

fn too_large(rv: u64, cur: u64) -> ApiError {
    let mut e = ApiError::timeout(format!("Too large resource version: {rv}, current: {cur}"));
    e.details = Some(
        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
    );
    e
}

fn encode_continue(rv: u64, key: &Key) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}", key.0, key.1)});
    base64::engine::general_purpose::URL_SAFE.encode(raw.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, Key)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, (ns.into(), name.into())))
}

impl Cluster {
    pub fn get(&self, res: ResId, ns: &str, name: &str) -> ApiResult<Arc<Obj>> {
        let st = self.state.read();
        let def = st.registry.get(res).ok_or_else(ApiError::unknown_path)?;
        let key = super::State::key(def, ns, name);
        st.store.get(res, &key.0, &key.1).cloned().ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    pub fn list(&self, res: ResId, ns: Option<&str>, opts: &ListOpts) -> ApiResult<ListResult> {
        let st = self.state.read();
        let def = st.registry.get(res).ok_or_else(ApiError::unknown_path)?;
        let cur = st.store.rv();
        let mut list_rv = cur;
        if let Some(rv) = opts.resource_version.as_deref().filter(|s| !s.is_empty()) {
            let n = parse_rv(rv)?;
            match opts.resource_version_match.as_deref() {
                Some("Exact") => {
                    if n > cur {
                        return Err(too_large(n, cur));
                    }
                    if n != cur {
                        return Err(ApiError::gone("The resourceVersion for the provided list is too old."));
                    }
                }
                Some("NotOlderThan") | None => {
                    if n > cur {
                        return Err(too_large(n, cur));
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            }
        } else if opts.resource_version_match.is_some() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        let mut after = None;
        if let Some(tok) = opts.continue_token.as_deref().filter(|s| !s.is_empty()) {
            let (rv, key) = decode_continue(tok)?;
            if rv < st.store.oldest_resumable() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            list_rv = rv;
            after = Some(key);
        }
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = false;
        let filtered = !opts.label.is_empty() || !opts.field.is_empty();
        let mut total_after = 0u64;
        for (k, o) in st.store.range(res, ns, after) {
            if let Some(l) = limit
                && items.len() >= l
            {
                more = true;
                if filtered {
                    break;
                }
                total_after += 1;
                continue;
            }
            if matches(def, o, (&k.0, &k.1), &opts.label, &opts.field) {
                items.push(o.clone());
                last_key = Some(k.clone());
            }
        }
        let continue_token = if more { last_key.as_ref().map(|k| encode_continue(list_rv, k)) } else { None };
        let remaining = if more && !filtered { Some(total_after) } else { None };
        Ok(ListResult { items, rv: list_rv, continue_token, remaining })
    }

    /// Starts a watch. `rv` None or "0" sends the current state as ADDED events first.
    pub fn watch_start(
        &self,
        res: ResId,
        ns: Option<&str>,
        rv: Option<&str>,
        label: &Selector,
        field: &Selector,
    ) -> ApiResult<Result<WatchStart, ApiError>> {
        let st = self.state.read();
        let def = st.registry.get(res).ok_or_else(ApiError::unknown_path)?;
        let cur = st.store.rv();
        let rx = st.store.subscribe();
        let rv = rv.filter(|s| !s.is_empty());
        match rv {
            None | Some("0") => {
                let initial = st
                    .store
                    .range(res, ns, None)
                    .filter(|(k, o)| matches(def, o, (&k.0, &k.1), label, field))
                    .map(|(_, o)| (EventType::Added, o.clone()))
                    .collect();
                Ok(Ok(WatchStart { initial, rx, rv: cur }))
            }
            Some(s) => {
                let n = parse_rv(s)?;
                if n > cur {
                    return Err(too_large(n, cur));
                }
                let Some(events) = st.store.events_since(n) else {
                    // Upstream answers 200 and then an ERROR event with 410.
                    return Ok(Err(ApiError::gone(format!(
                        "too old resource version: {n} ({})",
                        st.store.oldest_resumable() + 1
                    ))));
                };
                let mut initial = Vec::new();
                for ev in events {
                    if ev.res != res || ns.is_some_and(|ns| ns != &*ev.ns) {
                        continue;
                    }
                    if let Some(x) = filter_event(def, &ev, label, field) {
                        initial.push(x);
                    }
                }
                Ok(Ok(WatchStart { initial, rx, rv: cur }))
            }
        }
    }

    /// A readable label for errors about a type.
    pub fn qualified_name(&self, res: ResId) -> String {
        self.def(res).map(|d| qualified(&d.group, &d.plural)).unwrap_or_default()
    }
}

/// Applies selectors to a change event the way upstream's cacher does: an object
/// that starts matching is ADDED, one that stops matching is DELETED.
pub fn filter_event(
    def: &ResourceDef,
    ev: &Event,
    label: &Selector,
    field: &Selector,
) -> Option<(EventType, Arc<Obj>)> {
    let key = (&*ev.ns, &*ev.name);
    let now = matches(def, &ev.obj, key, label, field);
    if label.is_empty() && field.is_empty() {
        return Some((ev.typ, ev.obj.clone()));
    }
    match ev.typ {
        EventType::Added => now.then(|| (EventType::Added, ev.obj.clone())),
        EventType::Deleted => {
            let was = ev.prev.as_ref().map(|p| matches(def, p, key, label, field)).unwrap_or(now);
            was.then(|| (EventType::Deleted, ev.obj.clone()))
        }
        EventType::Modified => {
            let was = ev.prev.as_ref().is_some_and(|p| matches(def, p, key, label, field));
            match (was, now) {
                (true, true) => Some((EventType::Modified, ev.obj.clone())),
                (false, true) => Some((EventType::Added, ev.obj.clone())),
                (true, false) => Some((EventType::Deleted, ev.obj.clone())),
                (false, false) => None,
            }
        }
    }
}
