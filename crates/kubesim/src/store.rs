//! The object store: every object as compact JSON plus the few parsed fields that
//! lists, selectors and the garbage collector need, one global resourceVersion
//! counter (as etcd has), and a bounded history of change events for watches.

use crate::registry::ResId;
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (Box<str>, Box<str>);

/// A stored object.
#[derive(Debug)]
pub struct Obj {
    pub rv: u64,
    pub raw: Bytes,
    pub uid: Box<str>,
    /// Label keys and values, interned (most are shared by many objects).
    pub labels: Box<[(Arc<str>, Arc<str>)]>,
    /// Values of the type's extra field selectors, in registry order, interned.
    pub fields: Box<[Arc<str>]>,
    pub owners: Box<[Box<str>]>,
    /// Whether it has a deletionTimestamp (being deleted).
    pub deleting: bool,
    /// The object decoded, kept once [`Obj::shared_value`] asked for it (only
    /// kinds read on many writes do: ResourceQuotas, which quota admission
    /// reads on every create in their namespace).
    decoded: OnceLock<Arc<Value>>,
}

impl Obj {
    pub fn value(&self) -> Value {
        match self.decoded.get() {
            Some(v) => Value::clone(v),
            // The raw bytes were produced by serde_json from a Value, so they parse.
            None => serde_json::from_slice(&self.raw).unwrap_or(Value::Null),
        }
    }

    /// The object decoded, decoded once for this version and then shared:
    /// a stored version never changes.
    pub fn shared_value(&self) -> Arc<Value> {
        self.decoded.get_or_init(|| Arc::new(serde_json::from_slice(&self.raw).unwrap_or(Value::Null))).clone()
    }

    /// This object, with `value` (what it was encoded from) as its decoded form.
    pub fn decoded_as(self, value: Arc<Value>) -> Self {
        let _ = self.decoded.set(value);
        self
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as seen by watchers.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub res: ResId,
    pub ns: Box<str>,
    pub name: Box<str>,
    pub typ: EventType,
    /// The object after the change (for DELETED: its last state, with the deletion's rv).
    pub obj: Arc<Obj>,
    /// The object before the change (MODIFIED only).
    pub prev: Option<Arc<Obj>>,
    /// A write to the status subresource (or kubesim's own status bookkeeping,
    /// such as quota charges): only the status changed.
    pub status_only: bool,
}

pub struct Store {
    rv: u64,
    tables: Vec<BTreeMap<Key, Arc<Obj>>>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Events up to this rv are no longer in the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    /// owner uid -> dependents
    dependents: HashMap<Box<str>, HashSet<(ResId, Key)>>,
    /// uid -> where the object lives
    uids: HashMap<Box<str>, (ResId, Key)>,
    /// Shared copies of label and field strings.
    interned: HashSet<Arc<str>>,
    interned_after_prune: usize,
    /// Cluster IPs and node ports held by Services.
    pub allocations: crate::allocations::Allocations,
}

/// Parsed-out parts of an object that the store indexes.
pub struct Extract<'a> {
    pub field_paths: &'a [String],
}

fn str_at<'v>(v: &'v Value, path: &str) -> Option<&'v str> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    cur.as_str()
}

/// The value of a field selector path on an object, as upstream renders it
/// (missing strings are empty; booleans as "true"/"false").
pub fn field_value(v: &Value, path: &str) -> String {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get(part) {
            Some(x) => cur = x,
            None => {
                return if path == "spec.unschedulable" { "false".into() } else { String::new() };
            }
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(65536);
        Self {
            rv: 1,
            tables: Vec::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(16),
            compacted: 1,
            tx,
            dependents: HashMap::new(),
            uids: HashMap::new(),
            interned: HashSet::new(),
            interned_after_prune: 0,
            allocations: Default::default(),
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Reserves the next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Oldest resourceVersion a watch may resume from (exclusive lower bound).
    pub fn oldest_resumable(&self) -> u64 {
        self.compacted
    }

    /// Events with rv > `after`, or None when `after` is older than the history.
    pub fn events_since(&self, after: u64) -> Option<Vec<Arc<Event>>> {
        if after < self.oldest_resumable() {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= after);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    fn table(&self, res: ResId) -> Option<&BTreeMap<Key, Arc<Obj>>> {
        self.tables.get(res)
    }

    fn table_mut(&mut self, res: ResId) -> &mut BTreeMap<Key, Arc<Obj>> {
        if self.tables.len() <= res {
            self.tables.resize_with(res + 1, BTreeMap::new);
        }
        &mut self.tables[res]
    }

    pub fn get(&self, res: ResId, ns: &str, name: &str) -> Option<&Arc<Obj>> {
        let key: Key = (ns.into(), name.into());
        self.table(res)?.get(&key)
    }

    /// Objects of a type in a namespace (or all namespaces when `ns` is None),
    /// in key order, starting after `after` when given.
    pub fn range<'a>(
        &'a self,
        res: ResId,
        ns: Option<&'a str>,
        after: Option<Key>,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Arc<Obj>)> + 'a> {
        use std::ops::Bound;
        let Some(t) = self.table(res) else {
            return Box::new(std::iter::empty());
        };
        let lower = match (&after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.into(), "".into())),
            (None, None) => Bound::Unbounded,
        };
        let it = t.range((lower, Bound::Unbounded));
        match ns {
            Some(ns) => Box::new(it.take_while(move |(k, _)| &*k.0 == ns)),
            None => Box::new(it),
        }
    }

    pub fn count(&self, res: ResId) -> usize {
        self.table(res).map(|t| t.len()).unwrap_or(0)
    }

    pub fn by_uid(&self, uid: &str) -> Option<&(ResId, Key)> {
        self.uids.get(uid)
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<(ResId, Key)> {
        self.dependents.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Builds the stored form of an object at `rv`.
    pub fn encode(value: &Value, rv: u64, ex: &Extract) -> Obj {
        let labels = value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str().unwrap_or("")))).collect())
            .unwrap_or_default();
        let fields = ex.field_paths.iter().map(|p| Arc::from(field_value(value, p))).collect();
        let owners = value
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|o| str_at(o, "uid")).map(Into::into).collect())
            .unwrap_or_default();
        Obj {
            rv,
            raw: {
                let mut buf = serde_json::to_vec(value).unwrap_or_default();
                // Vec growth leaves up to 2x capacity; stored objects keep only their bytes.
                buf.shrink_to_fit();
                Bytes::from(buf)
            },
            uid: str_at(value, "metadata.uid").unwrap_or("").into(),
            labels,
            fields,
            owners,
            deleting: value.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null()),
            decoded: OnceLock::new(),
        }
    }

    fn publish(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        if self.history.len() >= self.history_cap
            && let Some(old) = self.history.pop_front()
        {
            self.compacted = old.rv;
        }
        self.history.push_back(ev.clone());
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    fn index(&mut self, res: ResId, key: &Key, obj: &Obj) {
        if !obj.uid.is_empty() {
            self.uids.insert(obj.uid.clone(), (res, key.clone()));
        }
        for o in obj.owners.iter() {
            self.dependents.entry(o.clone()).or_default().insert((res, key.clone()));
        }
    }

    fn unindex(&mut self, res: ResId, key: &Key, obj: &Obj) {
        if !obj.uid.is_empty() {
            self.uids.remove(&obj.uid);
        }
        for o in obj.owners.iter() {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(&(res, key.clone()));
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
    }

    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        match self.interned.get(s) {
            Some(x) => x.clone(),
            None => {
                self.interned.insert(s.clone());
                s.clone()
            }
        }
    }

    /// Shares label and field strings with other objects; drops strings no
    /// object uses any more once the set has doubled.
    fn dedupe(&mut self, mut obj: Obj) -> Obj {
        let mut labels = std::mem::take(&mut obj.labels).into_vec();
        for (k, v) in labels.iter_mut() {
            *k = self.intern(k);
            *v = self.intern(v);
        }
        obj.labels = labels.into_boxed_slice();
        let mut fields = std::mem::take(&mut obj.fields).into_vec();
        for f in fields.iter_mut() {
            *f = self.intern(f);
        }
        obj.fields = fields.into_boxed_slice();
        if self.interned.len() > 4096 && self.interned.len() > 2 * self.interned_after_prune {
            self.interned.retain(|s| Arc::strong_count(s) > 1);
            self.interned_after_prune = self.interned.len();
        }
        obj
    }

    /// Stores an object whose metadata.resourceVersion is already `obj.rv`.
    pub fn put(&mut self, res: ResId, key: Key, obj: Obj) -> Arc<Obj> {
        self.put_with(res, key, obj, false)
    }

    /// [`Store::put`] of a write that changed only the object's status.
    pub fn put_status(&mut self, res: ResId, key: Key, obj: Obj) -> Arc<Obj> {
        self.put_with(res, key, obj, true)
    }

    fn put_with(&mut self, res: ResId, key: Key, obj: Obj, status_only: bool) -> Arc<Obj> {
        let obj = Arc::new(self.dedupe(obj));
        let rv = obj.rv;
        self.index(res, &key, &obj);
        let prev = self.table_mut(res).insert(key.clone(), obj.clone());
        self.allocations.observe(res, &key, prev.as_deref(), Some(&obj));
        if let Some(p) = &prev {
            // Re-index owners if they changed (uid is immutable).
            if p.owners != obj.owners {
                let p = p.clone();
                self.unindex(res, &key, &p);
                self.index(res, &key, &obj);
            }
        }
        let typ = if prev.is_some() { EventType::Modified } else { EventType::Added };
        let status_only = status_only && prev.is_some();
        self.publish(Event { rv, res, ns: key.0, name: key.1, typ, obj: obj.clone(), prev, status_only });
        obj
    }

    /// Removes an object; `last` is its final state stamped with the deletion's rv.
    pub fn remove(&mut self, res: ResId, key: &Key, last: Arc<Obj>) -> Option<Arc<Obj>> {
        let old = self.table_mut(res).remove(key)?;
        self.unindex(res, key, &old);
        self.allocations.observe(res, key, Some(&old), None);
        self.publish(Event {
            rv: last.rv,
            res,
            ns: key.0.clone(),
            name: key.1.clone(),
            typ: EventType::Deleted,
            obj: last,
            prev: Some(old.clone()),
            status_only: false,
        });
        Some(old)
    }

    /// Drops a whole type (its CRD was deleted) without events per object.
    pub fn drop_table(&mut self, res: ResId) {
        if let Some(t) = self.tables.get_mut(res) {
            let t = std::mem::take(t);
            for (k, o) in t {
                self.unindex(res, &k, &o);
            }
        }
    }

    /// All objects, for snapshots.
    pub fn all(&self) -> impl Iterator<Item = (ResId, &Arc<Obj>)> {
        self.tables.iter().enumerate().flat_map(|(res, t)| t.values().map(move |o| (res, o)))
    }

    /// Restores the counter after loading a snapshot.
    pub fn set_rv(&mut self, rv: u64) {
        self.rv = self.rv.max(rv);
        // History from before the snapshot is gone: older watches get 410.
        self.compacted = self.rv;
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }
}
