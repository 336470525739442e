//! File descriptors for the long-running commands (`dev`, `sim`, `api`,
//! `serve`, `controller`, `bench`), set up before the async runtime starts.
//!
//! - The open-files limit is raised from its soft to its hard value (as Go
//!   programs such as kube-apiserver do at start): a thousand event-stream
//!   clients alone need more than a soft limit of 1,024.
//! - The kernel's descriptor table is grown to its working size at once. Linux
//!   grows it by doubling whenever a new descriptor does not fit (at 64, 256,
//!   512, 1,024... open files), and in a multi-threaded process each growth
//!   waits for an RCU grace period: the thread opening the socket stops,
//!   with the CPU idle. A burst of new connections (50 clients at once,
//!   each needing a connection to the API server too) used to pay that several
//!   times; growing the table while the process has one thread costs nothing.

/// The table is grown to hold this many descriptors (8 bytes each in the
/// kernel: 128 KiB), or the open-files limit when that is lower.
pub const TABLE: u64 = 16_384;

/// What [`prepare`] did, for the start-up log.
#[derive(Debug)]
pub struct Prepared {
    /// The soft open-files limit before and after.
    pub limit_before: Option<u64>,
    pub limit: Option<u64>,
    /// The descriptor table's size now (None: it could not be grown).
    pub table: Option<u64>,
}

/// The table size for a soft open-files limit (None: unlimited).
pub fn table_size(limit: Option<u64>) -> u64 {
    limit.map_or(TABLE, |l| l.min(TABLE))
}

/// Raises the soft open-files limit to the hard one and grows the descriptor
/// table. Call it before any thread starts. Failures leave things as they
/// were and are reported in the result, never fatal.
#[cfg(target_os = "linux")]
pub fn prepare() -> Prepared {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let mut limit = before.current;
    if before.current != before.maximum {
        let raised = rustix::process::Rlimit { current: before.maximum, maximum: before.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = before.maximum;
        }
    }
    let size = table_size(limit);
    // A descriptor numbered size - 1 makes the kernel size the table for
    // `size` entries; closing it keeps the table (tables never shrink).
    let top = i32::try_from(size.saturating_sub(1)).ok().filter(|t| *t > 0);
    let table = top
        .and_then(|top| Some((top, std::fs::File::open("/dev/null").ok()?)))
        .and_then(|(top, f)| rustix::io::fcntl_dupfd_cloexec(&f, top).ok())
        .map(|_dup| size);
    Prepared { limit_before: before.current, limit, table }
}

#[cfg(not(target_os = "linux"))]
pub fn prepare() -> Prepared {
    Prepared { limit_before: None, limit: None, table: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_the_limit_or_the_cap() {
        assert_eq!(table_size(Some(1024)), 1024);
        assert_eq!(table_size(Some(1 << 20)), TABLE);
        assert_eq!(table_size(None), TABLE);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn prepare_leaves_a_descriptor_near_the_top_usable() {
        let p = prepare();
        let size = p.table.expect("the table could be grown");
        assert_eq!(size, table_size(p.limit));
        // The highest descriptor the table was grown for can be taken, and
        // nothing of the growth is left open.
        let f = std::fs::File::open("/dev/null").unwrap();
        let high = rustix::io::fcntl_dupfd_cloexec(&f, (size - 1) as i32).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(high.as_raw_fd() as u64, size - 1, "prepare must have closed its own descriptor");
        if let (Some(before), Some(after)) = (p.limit_before, p.limit) {
            assert!(after >= before, "the limit is never lowered");
        }
    }
}
