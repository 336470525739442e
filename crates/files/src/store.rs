//! What a volume can do, whatever holds it: list, read, write (through an
//! upload that lands whole or not at all), remove and make directories.
//!
//! Stores are synchronous (a disk is); the server calls them on blocking
//! threads.

use crate::path::VolPath;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek};

/// What a directory entry is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One file or directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Last modification, RFC 3339 (absent when the store cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

/// Why an operation failed, with what the tenant needs to know (never a
/// server path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: already exists")]
    Exists(String),
    #[error("{0}: is not a directory")]
    NotADirectory(String),
    #[error("{0}: is a directory")]
    IsADirectory(String),
    #[error("{0}: the directory is not empty (delete with recursive=true)")]
    NotEmpty(String),
    #[error("{0}: leads outside the volume (through a symbolic link)")]
    Escapes(String),
    #[error("the volume is full: {0}")]
    Full(String),
    #[error("the volume is read-only")]
    ReadOnly,
    #[error("{0}: {1}")]
    Io(String, String),
}

impl FsError {
    /// The HTTP status the file server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Exists(_) | Self::NotEmpty(_) => 409,
            Self::NotADirectory(_) | Self::IsADirectory(_) => 409,
            Self::Escapes(_) | Self::ReadOnly => 403,
            Self::Full(_) => 507,
            Self::Io(..) => 500,
        }
    }

    /// A short machine-readable reason (the API's problem type).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not-found",
            Self::Exists(_) => "exists",
            Self::NotADirectory(_) => "not-a-directory",
            Self::IsADirectory(_) => "is-a-directory",
            Self::NotEmpty(_) => "not-empty",
            Self::Escapes(_) => "escapes-volume",
            Self::Full(_) => "volume-full",
            Self::ReadOnly => "read-only",
            Self::Io(..) => "io",
        }
    }

    /// The error an I/O failure on `path` is.
    pub fn io(path: &VolPath, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let p = path.to_string();
        match e.kind() {
            K::NotFound => Self::NotFound(p),
            K::AlreadyExists => Self::Exists(p),
            K::NotADirectory => Self::NotADirectory(p),
            K::IsADirectory => Self::IsADirectory(p),
            K::DirectoryNotEmpty => Self::NotEmpty(p),
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Self::Full(e.to_string()),
            K::ReadOnlyFilesystem => Self::ReadOnly,
            // cap-std's refusal of a path that resolves outside the root.
            K::PermissionDenied if e.to_string().contains("outside of the filesystem") => Self::Escapes(p),
            _ => Self::Io(p, e.kind().to_string()),
        }
    }
}

/// A file's content, read from any offset.
pub trait Content: Read + Seek + Send {}
impl<T: Read + Seek + Send> Content for T {}

/// A file being written: it appears at its path on [`Upload::commit`] only;
/// dropped uncommitted, nothing of it stays.
pub trait Upload: Send {
    fn write(&mut self, chunk: &[u8]) -> Result<(), FsError>;
    /// Puts the file in place (replacing one that is there) and says what it is.
    fn commit(self: Box<Self>) -> Result<Entry, FsError>;
}

/// A volume.
pub trait Store: Send + Sync {
    /// The entries of directory `dir`, by name.
    fn list(&self, dir: &VolPath) -> Result<Vec<Entry>, FsError>;
    /// What `path` is (following a symlink that stays in the volume).
    fn stat(&self, path: &VolPath) -> Result<Entry, FsError>;
    /// A regular file's content.
    fn open(&self, path: &VolPath) -> Result<Box<dyn Content>, FsError>;
    /// Starts writing the file `path`; its directory must exist. With
    /// `replace` false, a file already there is an error.
    fn create(&self, path: &VolPath, replace: bool) -> Result<Box<dyn Upload>, FsError>;
    /// Removes a file, or a directory (with all it holds when `recursive`).
    fn remove(&self, path: &VolPath, recursive: bool) -> Result<(), FsError>;
    /// Makes directory `path`; its parent must exist.
    fn mkdir(&self, path: &VolPath) -> Result<(), FsError>;
}

/// RFC 3339 of a modification time.
pub fn rfc3339(t: std::time::SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(t).ok().map(|ts| ts.round(jiff::Unit::Second).unwrap_or(ts).to_string())
}
