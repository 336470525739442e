//! The file server's wire protocol, spoken between the Paddock API and the
//! file server (never by tenants directly: the API checks who asks first).
//!
//! Every route but `/healthz` needs `Authorization: Bearer <token>`, the
//! tenant's file-server token. Paths are query parameters (`path=`), checked
//! by [`crate::path::VolPath::parse`].
//!
//! | method | route | answer |
//! |---|---|---|
//! | GET | `/healthz` | 200 |
//! | GET | `/v1/volumes/{volume}/list?path=` | [`Listing`] |
//! | GET | `/v1/volumes/{volume}/content?path=` | the bytes; one `Range: bytes=` range gives 206 |
//! | PUT | `/v1/volumes/{volume}/content?path=&replace=` | 201 [`crate::Entry`] |
//! | DELETE | `/v1/volumes/{volume}/entry?path=&recursive=` | 204 |
//! | POST | `/v1/volumes/{volume}/mkdir?path=` | 201 [`crate::Entry`] |
//!
//! Failures are [`Failure`] bodies with the status of [`crate::FsError::status`]
//! (400 `bad-path` for a refused path, 401 `unauthorized`).

use crate::store::Entry;
use serde::{Deserialize, Serialize};

/// The port the file server listens on in its pod.
pub const PORT: u16 = 8090;
/// The volume holding the tenant's own claim.
pub const HOME: &str = "home";

/// The volume name of group `g`'s shared claim.
pub fn group_volume(g: &str) -> String {
    format!("group-{g}")
}

/// A directory's entries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The directory, from the volume's root (`/`, `/docs`).
    pub path: String,
    /// The first [`MAX_LISTED`] entries by name.
    pub entries: Vec<Entry>,
    /// Whether the directory holds more than are listed.
    #[serde(default)]
    pub truncated: bool,
}

/// Entries one listing holds at most.
pub const MAX_LISTED: usize = 10_000;

/// What went wrong.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

/// The query of every route.
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
pub struct Target {
    #[serde(default)]
    pub path: String,
    /// PUT: replace a file already there.
    #[serde(default)]
    pub replace: bool,
    /// DELETE: a directory with all it holds.
    #[serde(default)]
    pub recursive: bool,
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Range {
    /// No range, or one the server may ignore (several ranges, another unit).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range outside the file: 416.
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 §14.1.2), one range of bytes.
pub fn range(header: Option<&str>, len: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Range::Whole };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Range::Whole };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| if s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Part { start: len.saturating_sub(n), end: len - 1 },
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        (false, _) => match (num(a), if b.is_empty() { Some(u64::MAX) } else { num(b) }) {
            (Some(s), Some(e)) if s <= e && s < len => Range::Part { start: s, end: e.min(len - 1) },
            (Some(s), Some(e)) if s <= e => Range::Unsatisfiable,
            _ => Range::Whole,
        },
        (true, true) => Range::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(range(None, 10), Range::Whole);
        assert_eq!(range(Some("bytes=0-3"), 10), Range::Part { start: 0, end: 3 });
        assert_eq!(range(Some("bytes=4-"), 10), Range::Part { start: 4, end: 9 });
        assert_eq!(range(Some("bytes=-3"), 10), Range::Part { start: 7, end: 9 });
        assert_eq!(range(Some("bytes=-30"), 10), Range::Part { start: 0, end: 9 });
        assert_eq!(range(Some("bytes=5-99999999999999999999"), 10), Range::Whole);
        assert_eq!(range(Some("bytes=5-18446744073709551615"), 10), Range::Part { start: 5, end: 9 });
        assert_eq!(range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-0"), 0), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=3-1"), 10), Range::Whole);
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), Range::Whole);
        assert_eq!(range(Some("items=0-1"), 10), Range::Whole);
        assert_eq!(range(Some("bytes=+1-2"), 10), Range::Whole);
    }
}
