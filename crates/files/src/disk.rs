//! A volume on disk (the mounted claim), opened once as a `cap-std` [`Dir`]:
//! every path is resolved beneath it by the kernel (`openat2` with
//! `RESOLVE_BENEATH` where there is one, component by component otherwise),
//! so a symlink that a tenant's pod planted, even one swapped in between a
//! check and a use, cannot lead the server out of the volume.
//!
//! An upload is written to a hidden file beside its target and renamed into
//! place when complete; one that fails or is abandoned is removed.

use crate::path::VolPath;
use crate::store::{Content, Entry, FsError, Kind, Store, Upload, rfc3339};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Hidden names of uploads in progress; not listed.
const UPLOAD_PREFIX: &str = ".paddock-upload-";

pub struct DiskStore {
    root: Dir,
    read_only: bool,
}

impl DiskStore {
    /// Opens the directory `path` as a volume's root.
    pub fn open(path: &Path, read_only: bool) -> std::io::Result<Self> {
        Ok(Self { root: Dir::open_ambient_dir(path, ambient_authority())?, read_only })
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.read_only { Err(FsError::ReadOnly) } else { Ok(()) }
    }

    fn meta(&self, path: &VolPath) -> Result<Metadata, FsError> {
        if path.is_root() { self.root.dir_metadata() } else { self.root.metadata(path.relative()) }
            .map_err(|e| FsError::io(path, &e))
    }
}

fn entry(name: String, m: &Metadata) -> Entry {
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Directory
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    let size = if kind == Kind::File { m.len() } else { 0 };
    Entry { name, kind, size, modified: m.modified().ok().and_then(|t| rfc3339(t.into_std())) }
}

impl Store for DiskStore {
    fn list(&self, dir: &VolPath) -> Result<Vec<Entry>, FsError> {
        let err = |e: std::io::Error| FsError::io(dir, &e);
        if !self.meta(dir)?.is_dir() {
            return Err(FsError::NotADirectory(dir.to_string()));
        }
        let mut out = Vec::new();
        for item in self.root.read_dir(dir.relative()).map_err(err)? {
            let item = item.map_err(err)?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            // Not following a symlink: it is listed as one.
            let m = item.metadata().map_err(err)?;
            out.push(entry(name, &m));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn stat(&self, path: &VolPath) -> Result<Entry, FsError> {
        let m = self.meta(path)?;
        Ok(entry(path.name().unwrap_or("/").to_string(), &m))
    }

    fn open(&self, path: &VolPath) -> Result<Box<dyn Content>, FsError> {
        if self.meta(path)?.is_dir() {
            return Err(FsError::IsADirectory(path.to_string()));
        }
        let f = self.root.open(path.relative()).map_err(|e| FsError::io(path, &e))?;
        Ok(Box::new(f.into_std()))
    }

    fn create(&self, path: &VolPath, replace: bool) -> Result<Box<dyn Upload>, FsError> {
        self.writable()?;
        let parent = path.parent();
        if !self.meta(&parent)?.is_dir() {
            return Err(FsError::NotADirectory(parent.to_string()));
        }
        match self.root.symlink_metadata(path.relative()) {
            Ok(m) if m.is_dir() => return Err(FsError::IsADirectory(path.to_string())),
            Ok(_) if !replace => return Err(FsError::Exists(path.to_string())),
            _ => {}
        }
        let temp = parent.join(&format!("{UPLOAD_PREFIX}{:016x}", rand::random::<u64>()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        let file = self.root.open_with(temp.relative(), &opts).map_err(|e| FsError::io(path, &e))?;
        let root = self.root.try_clone().map_err(|e| FsError::io(path, &e))?;
        Ok(Box::new(DiskUpload { root, temp, target: path.clone(), file: Some(file.into_std()), done: false }))
    }

    fn remove(&self, path: &VolPath, recursive: bool) -> Result<(), FsError> {
        self.writable()?;
        let rel = path.relative();
        let err = |e: std::io::Error| FsError::io(path, &e);
        // The link itself is removed, never what it points at.
        let m = self.root.symlink_metadata(&rel).map_err(err)?;
        if m.is_dir() {
            if recursive { self.root.remove_dir_all(&rel) } else { self.root.remove_dir(&rel) }.map_err(err)
        } else {
            self.root.remove_file(&rel).map_err(err)
        }
    }

    fn mkdir(&self, path: &VolPath) -> Result<(), FsError> {
        self.writable()?;
        self.root.create_dir(path.relative()).map_err(|e| FsError::io(path, &e))
    }
}

struct DiskUpload {
    root: Dir,
    temp: VolPath,
    target: VolPath,
    file: Option<std::fs::File>,
    done: bool,
}

impl Upload for DiskUpload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), FsError> {
        let Some(f) = self.file.as_mut() else { return Err(FsError::Io(self.target.to_string(), "closed".into())) };
        f.write_all(chunk).map_err(|e| FsError::io(&self.target, &e))
    }

    fn commit(mut self: Box<Self>) -> Result<Entry, FsError> {
        if let Some(f) = self.file.take() {
            f.sync_data().map_err(|e| FsError::io(&self.target, &e))?;
        }
        self.root
            .rename(self.temp.relative(), &self.root, self.target.relative())
            .map_err(|e| FsError::io(&self.target, &e))?;
        self.done = true;
        let m = self.root.metadata(self.target.relative()).map_err(|e| FsError::io(&self.target, &e))?;
        Ok(entry(self.target.name().unwrap_or_default().to_string(), &m))
    }
}

impl Drop for DiskUpload {
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            if let Err(e) = self.root.remove_file(self.temp.relative()) {
                tracing::warn!(path = %self.temp, error = %e, "could not remove an abandoned upload");
            }
        }
    }
}
