//! A volume in memory, for kubesim's simulated volumes: a tree of
//! directories and files, bounded by the volume's capacity (like a full
//! disk, a write past it fails) and by a [`Budget`] shared by all the
//! simulator's volumes, so that no tenant can grow the simulator without
//! bound.

use crate::path::VolPath;
use crate::store::{Content, Entry, FsError, Kind, Store, Upload, rfc3339};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Bytes that all the volumes sharing it may hold together.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicU64::new(0) })
    }

    /// Takes `n` bytes if they are left.
    fn charge(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(n).filter(|t| *t <= self.limit))
            .is_ok()
    }

    fn release(&self, n: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
enum Node {
    Dir(SystemTime),
    File(Bytes, SystemTime),
}

struct Tree {
    /// Every node but the root, by its components.
    nodes: BTreeMap<Vec<String>, Node>,
    /// Bytes of files and of uploads in progress.
    used: u64,
}

struct Shared {
    tree: Mutex<Tree>,
    capacity: AtomicU64,
    budget: Arc<Budget>,
    read_only: bool,
}

/// A volume in memory; clones share it.
#[derive(Clone)]
pub struct MemoryStore(Arc<Shared>);

impl MemoryStore {
    /// An empty volume of `capacity` bytes drawing on `budget`.
    pub fn new(capacity: u64, budget: Arc<Budget>) -> Self {
        let tree = Tree { nodes: BTreeMap::new(), used: 0 };
        Self(Arc::new(Shared { tree: Mutex::new(tree), capacity: AtomicU64::new(capacity), budget, read_only: false }))
    }

    /// The same content, refusing writes (a read-only mount).
    pub fn read_only(&self) -> ReadOnly {
        ReadOnly(self.clone())
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.0.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.0.read_only { Err(FsError::ReadOnly) } else { Ok(()) }
    }

    /// Grows (or shrinks) the volume, as a resized claim does; what it holds stays.
    pub fn set_capacity(&self, bytes: u64) {
        self.0.capacity.store(bytes, Ordering::Release);
    }

    /// Bytes the volume's files hold.
    pub fn used(&self) -> u64 {
        self.tree().used
    }
}

impl Tree {
    fn node(&self, path: &VolPath) -> Result<Node, FsError> {
        if path.is_root() {
            return Ok(Node::Dir(SystemTime::UNIX_EPOCH));
        }
        match self.nodes.get(path.parts()) {
            Some(n) => Ok(n.clone()),
            None => {
                // As a disk says: a file on the way is not a directory.
                let mut p = path.parent();
                while !p.is_root() {
                    if let Some(Node::File(..)) = self.nodes.get(p.parts()) {
                        return Err(FsError::NotADirectory(p.to_string()));
                    }
                    p = p.parent();
                }
                Err(FsError::NotFound(path.to_string()))
            }
        }
    }

    fn dir(&self, path: &VolPath) -> Result<(), FsError> {
        match self.node(path)? {
            Node::Dir(_) => Ok(()),
            Node::File(..) => Err(FsError::NotADirectory(path.to_string())),
        }
    }

    /// The nodes under `path` (not itself), deepest last.
    fn under(&self, path: &VolPath) -> Vec<Vec<String>> {
        let prefix = path.parts();
        self.nodes
            .range(prefix.to_vec()..)
            .skip_while(|(k, _)| k.as_slice() == prefix)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn entry(name: &str, n: &Node) -> Entry {
    let (kind, size, t) = match n {
        Node::Dir(t) => (Kind::Directory, 0, *t),
        Node::File(b, t) => (Kind::File, b.len() as u64, *t),
    };
    Entry { name: name.to_string(), kind, size, modified: rfc3339(t) }
}

impl Store for MemoryStore {
    fn list(&self, dir: &VolPath) -> Result<Vec<Entry>, FsError> {
        let tree = self.tree();
        tree.dir(dir)?;
        let depth = dir.parts().len() + 1;
        let out = tree
            .under(dir)
            .into_iter()
            .filter(|k| k.len() == depth)
            .filter_map(|k| tree.nodes.get(&k).map(|n| entry(&k[depth - 1], n)))
            .collect();
        Ok(out)
    }

    fn stat(&self, path: &VolPath) -> Result<Entry, FsError> {
        Ok(entry(path.name().unwrap_or("/"), &self.tree().node(path)?))
    }

    fn open(&self, path: &VolPath) -> Result<Box<dyn Content>, FsError> {
        match self.tree().node(path)? {
            Node::File(b, _) => Ok(Box::new(std::io::Cursor::new(b))),
            Node::Dir(_) => Err(FsError::IsADirectory(path.to_string())),
        }
    }

    fn create(&self, path: &VolPath, replace: bool) -> Result<Box<dyn Upload>, FsError> {
        self.writable()?;
        let tree = self.tree();
        tree.dir(&path.parent())?;
        match tree.node(path) {
            Ok(Node::Dir(_)) => return Err(FsError::IsADirectory(path.to_string())),
            Ok(_) if !replace => return Err(FsError::Exists(path.to_string())),
            _ => {}
        }
        Ok(Box::new(MemoryUpload { store: self.clone(), path: path.clone(), buf: Vec::new(), done: false }))
    }

    fn remove(&self, path: &VolPath, recursive: bool) -> Result<(), FsError> {
        self.writable()?;
        let mut tree = self.tree();
        let under = match tree.node(path)? {
            Node::File(..) => Vec::new(),
            Node::Dir(_) => tree.under(path),
        };
        if !under.is_empty() && !recursive {
            return Err(FsError::NotEmpty(path.to_string()));
        }
        let mut freed = 0u64;
        for k in under.iter().chain(std::iter::once(&path.parts().to_vec())) {
            if let Some(Node::File(b, _)) = tree.nodes.remove(k) {
                freed = freed.saturating_add(b.len() as u64);
            }
        }
        tree.used = tree.used.saturating_sub(freed);
        self.0.budget.release(freed);
        Ok(())
    }

    fn mkdir(&self, path: &VolPath) -> Result<(), FsError> {
        self.writable()?;
        let mut tree = self.tree();
        tree.dir(&path.parent())?;
        if tree.node(path).is_ok() {
            return Err(FsError::Exists(path.to_string()));
        }
        tree.nodes.insert(path.parts().to_vec(), Node::Dir(SystemTime::now()));
        Ok(())
    }
}

/// A [`MemoryStore`] mounted read-only.
pub struct ReadOnly(MemoryStore);

impl Store for ReadOnly {
    fn list(&self, dir: &VolPath) -> Result<Vec<Entry>, FsError> {
        self.0.list(dir)
    }
    fn stat(&self, path: &VolPath) -> Result<Entry, FsError> {
        self.0.stat(path)
    }
    fn open(&self, path: &VolPath) -> Result<Box<dyn Content>, FsError> {
        self.0.open(path)
    }
    fn create(&self, _: &VolPath, _: bool) -> Result<Box<dyn Upload>, FsError> {
        Err(FsError::ReadOnly)
    }
    fn remove(&self, _: &VolPath, _: bool) -> Result<(), FsError> {
        Err(FsError::ReadOnly)
    }
    fn mkdir(&self, _: &VolPath) -> Result<(), FsError> {
        Err(FsError::ReadOnly)
    }
}

struct MemoryUpload {
    store: MemoryStore,
    path: VolPath,
    buf: Vec<u8>,
    done: bool,
}

impl Upload for MemoryUpload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), FsError> {
        let n = chunk.len() as u64;
        let shared = &self.store.0;
        let capacity = shared.capacity.load(Ordering::Acquire);
        let mut tree = self.store.tree();
        if tree.used.checked_add(n).is_none_or(|t| t > capacity) {
            return Err(FsError::Full(format!("its capacity is {capacity} bytes")));
        }
        if !shared.budget.charge(n) {
            return Err(FsError::Full(format!(
                "the simulator's memory for volume content ({} bytes) is used up",
                shared.budget.limit
            )));
        }
        tree.used = tree.used.saturating_add(n);
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<Entry, FsError> {
        let mut tree = self.store.tree();
        tree.dir(&self.path.parent())?;
        if let Ok(Node::Dir(_)) = tree.node(&self.path) {
            return Err(FsError::IsADirectory(self.path.to_string()));
        }
        let node = Node::File(Bytes::from(std::mem::take(&mut self.buf)), SystemTime::now());
        let e = entry(self.path.name().unwrap_or_default(), &node);
        if let Some(Node::File(old, _)) = tree.nodes.insert(self.path.parts().to_vec(), node) {
            let n = old.len() as u64;
            tree.used = tree.used.saturating_sub(n);
            self.store.0.budget.release(n);
        }
        self.done = true;
        Ok(e)
    }
}

impl Drop for MemoryUpload {
    fn drop(&mut self) {
        if !self.done {
            let n = self.buf.len() as u64;
            let mut tree = self.store.tree();
            tree.used = tree.used.saturating_sub(n);
            self.store.0.budget.release(n);
        }
    }
}
