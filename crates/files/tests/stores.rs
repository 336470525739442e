//! Both stores behave alike, and the disk store never leaves its root.

use files::memory::{Budget, MemoryStore};
use files::{FsError, Kind, Store, VolPath, disk::DiskStore};
use std::io::Read;
use std::path::PathBuf;

fn p(s: &str) -> VolPath {
    VolPath::parse(s).unwrap()
}

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("paddock-files-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(s: &dyn Store, path: &str, data: &[u8]) -> Result<files::Entry, FsError> {
    let mut up = s.create(&p(path), true)?;
    for c in data.chunks(3) {
        up.write(c)?;
    }
    up.commit()
}

fn read(s: &dyn Store, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.open(&p(path)).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn behaves(s: &dyn Store) {
    assert!(s.list(&VolPath::root()).unwrap().is_empty());
    s.mkdir(&p("docs")).unwrap();
    assert_eq!(s.mkdir(&p("docs")), Err(FsError::Exists("/docs".into())));
    assert_eq!(s.mkdir(&p("no/such")).unwrap_err().status(), 404);
    let e = write(s, "docs/a.txt", b"hello world").unwrap();
    assert_eq!((e.name.as_str(), e.kind, e.size), ("a.txt", Kind::File, 11));
    assert_eq!(read(s, "/docs/a.txt"), b"hello world");
    // Replacing, and refusing to replace.
    write(s, "docs/a.txt", b"bye").unwrap();
    assert_eq!(read(s, "docs/a.txt"), b"bye");
    assert_eq!(s.create(&p("docs/a.txt"), false).err(), Some(FsError::Exists("/docs/a.txt".into())));
    assert_eq!(s.create(&p("docs"), true).err(), Some(FsError::IsADirectory("/docs".into())));
    assert_eq!(s.create(&p("docs/a.txt/x"), true).err().map(|e| e.status()), Some(409));
    // An upload dropped before its commit leaves nothing.
    let mut up = s.create(&p("docs/half"), true).unwrap();
    up.write(b"part").unwrap();
    drop(up);
    let names: Vec<String> = s.list(&p("docs")).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a.txt"]);
    let root = s.list(&VolPath::root()).unwrap();
    assert_eq!((root.len(), root[0].kind), (1, Kind::Directory));
    assert_eq!(s.list(&p("docs/a.txt")).err(), Some(FsError::NotADirectory("/docs/a.txt".into())));
    assert_eq!(s.remove(&p("docs"), false).err(), Some(FsError::NotEmpty("/docs".into())));
    s.remove(&p("docs"), true).unwrap();
    assert_eq!(s.stat(&p("docs")).err(), Some(FsError::NotFound("/docs".into())));
}

#[test]
fn the_memory_store_behaves_like_a_disk() {
    behaves(&MemoryStore::new(1 << 20, Budget::new(1 << 20)));
}

#[test]
fn the_disk_store_behaves_like_the_memory_store() {
    let d = TempDir::new();
    behaves(&DiskStore::open(&d.0, false).unwrap());
}

#[test]
fn a_full_memory_volume_refuses_the_write_and_keeps_nothing_of_it() {
    let budget = Budget::new(1000);
    let s = MemoryStore::new(100, budget.clone());
    write(&s, "a", &[1; 60]).unwrap();
    let e = write(&s, "b", &[2; 50]).unwrap_err();
    assert_eq!((e.status(), e.reason()), (507, "volume-full"), "{e}");
    assert_eq!((s.used(), budget.used()), (60, 60));
    // Two volumes on one budget: the budget bounds them together.
    let other = MemoryStore::new(10_000, budget.clone());
    let e = write(&other, "big", &[3; 990]).unwrap_err();
    assert!(e.to_string().contains("simulator's memory"), "{e}");
    s.remove(&p("a"), false).unwrap();
    assert_eq!(budget.used(), 0);
    write(&other, "big", &[3; 990]).unwrap();
    let ro = other.read_only();
    assert_eq!(read(&ro, "big").len(), 990);
    assert_eq!(ro.remove(&p("big"), false), Err(FsError::ReadOnly));
}

#[test]
fn symlinks_never_lead_out_of_the_disk_volume() {
    let d = TempDir::new();
    let outside = TempDir::new();
    std::fs::write(outside.0.join("secret"), b"not yours").unwrap();
    std::os::unix::fs::symlink("/etc", d.0.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.0.join("secret"), d.0.join("secret")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../etc/passwd", d.0.join("passwd")).unwrap();
    std::fs::create_dir(d.0.join("in")).unwrap();
    std::fs::write(d.0.join("in/file"), b"mine").unwrap();
    std::os::unix::fs::symlink("in/file", d.0.join("inner")).unwrap();
    let s = DiskStore::open(&d.0, false).unwrap();
    let listed: Vec<(String, Kind)> = s.list(&VolPath::root()).unwrap().into_iter().map(|e| (e.name, e.kind)).collect();
    assert!(listed.contains(&("etc".into(), Kind::Symlink)), "{listed:?}");
    for path in ["etc/passwd", "secret", "passwd", "etc/hostname"] {
        let e = s.open(&p(path)).err().unwrap_or_else(|| panic!("{path} was opened"));
        assert_eq!(e.status(), 403, "{path}: {e}");
        assert!(matches!(e, FsError::Escapes(_)), "{path}: {e:?}");
    }
    assert!(matches!(s.list(&p("etc")), Err(FsError::Escapes(_))));
    assert!(s.create(&p("etc/evil"), true).is_err());
    assert!(s.mkdir(&p("etc/evil")).is_err());
    assert!(!std::path::Path::new("/etc/evil").exists());
    // A link inside the volume is followed; removing a link removes only it.
    assert_eq!(read(&s, "inner"), b"mine");
    s.remove(&p("secret"), false).unwrap();
    assert_eq!(std::fs::read(outside.0.join("secret")).unwrap(), b"not yours");
    s.remove(&p("etc"), true).unwrap();
    assert!(std::path::Path::new("/etc/hostname").exists() || std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn a_read_only_disk_volume_refuses_writes() {
    let d = TempDir::new();
    let s = DiskStore::open(&d.0, true).unwrap();
    assert_eq!(s.mkdir(&p("x")), Err(FsError::ReadOnly));
    assert_eq!(s.create(&p("x"), true).err(), Some(FsError::ReadOnly));
    assert_eq!(s.remove(&p("x"), true), Err(FsError::ReadOnly));
}
