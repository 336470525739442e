//! Volume paths: what a tenant types, checked once into a path that cannot
//! leave its volume by its spelling. (Symlinks are the store's concern: the
//! disk store resolves every path beneath the volume's root.)
//!
//! `/` and the empty path are the volume's root; a leading `/` is allowed and
//! means the same root (`/etc/passwd` is the volume's `etc/passwd`, never the
//! server's). `.` and empty components are dropped; `..` is refused rather
//! than resolved, so what is shown is what is reached.

use std::fmt;

/// Longest path taken, in bytes (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest name of one file or directory, in bytes (Linux's NAME_MAX).
pub const MAX_NAME: usize = 255;

/// A checked path inside a volume: its components, none empty, `.` or `..`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VolPath(Vec<String>);

/// Why a path was refused; `Display` says it for the `path` parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is {0} bytes long; at most {MAX_PATH} are taken")]
    TooLong(usize),
    #[error("path has a name of {0} bytes; at most {MAX_NAME} are taken for one name")]
    NameTooLong(usize),
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a control character ({0:#04x})")]
    Control(u32),
    #[error("path contains `..`; paths are taken from the volume's root, without `..`")]
    Parent,
    #[error("path names the volume's root, which cannot be {0}")]
    Root(&'static str),
}

impl VolPath {
    /// Checks `raw`: see the module's documentation for what is taken.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH {
            return Err(PathError::TooLong(raw.len()));
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(if c == '\0' { PathError::Nul } else { PathError::Control(c as u32) });
        }
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::Parent),
                p if p.len() > MAX_NAME => return Err(PathError::NameTooLong(p.len())),
                p => parts.push(p.to_string()),
            }
        }
        Ok(Self(parts))
    }

    /// The volume's root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses the root for an operation that needs a named file or directory.
    pub fn named(self, what: &'static str) -> Result<Self, PathError> {
        if self.is_root() { Err(PathError::Root(what)) } else { Ok(self) }
    }

    /// The components, root first.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// The last component (`None` for the root).
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// The directory holding this path (the root holds itself).
    pub fn parent(&self) -> Self {
        let mut p = self.0.clone();
        p.pop();
        Self(p)
    }

    /// `dir/name`.
    pub fn join(&self, name: &str) -> Self {
        let mut p = self.0.clone();
        p.push(name.to_string());
        Self(p)
    }

    /// The path relative to the root, as a store opens it (`.` for the root).
    pub fn relative(&self) -> String {
        if self.0.is_empty() { ".".to_string() } else { self.0.join("/") }
    }
}

impl fmt::Display for VolPath {
    /// `/a/b`, and `/` for the root.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for p in &self.0 {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_taken_from_the_root() {
        for (raw, shown) in [
            ("", "/"),
            ("/", "/"),
            ("a", "/a"),
            ("/a/b/", "/a/b"),
            ("./a//./b", "/a/b"),
            ("/etc/passwd", "/etc/passwd"),
        ] {
            assert_eq!(VolPath::parse(raw).unwrap().to_string(), shown, "{raw:?}");
        }
        assert_eq!(VolPath::parse("a/b").unwrap().relative(), "a/b");
        assert_eq!(VolPath::root().relative(), ".");
        assert_eq!(VolPath::parse("x y/ü…").unwrap().name(), Some("ü…"));
    }

    #[test]
    fn hostile_paths_are_refused_with_the_reason() {
        for (raw, want) in [
            ("..", PathError::Parent),
            ("a/../../etc", PathError::Parent),
            ("/..", PathError::Parent),
            ("a\0b", PathError::Nul),
            ("a\nb", PathError::Control(10)),
            ("a\u{7f}", PathError::Control(0x7f)),
        ] {
            assert_eq!(VolPath::parse(raw), Err(want), "{raw:?}");
        }
        assert_eq!(VolPath::parse(&"a".repeat(256)), Err(PathError::NameTooLong(256)));
        assert!(VolPath::parse(&"a".repeat(255)).is_ok());
        assert_eq!(VolPath::parse(&"a/".repeat(2049)), Err(PathError::TooLong(4098)));
        assert!(VolPath::parse("...").is_ok(), "three dots are a name");
        assert!(matches!(VolPath::root().named("deleted"), Err(PathError::Root("deleted"))));
    }
}
